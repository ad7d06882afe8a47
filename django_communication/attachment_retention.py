"""Removing stored attachments: files nothing refers to any more (written for an ``emit()``
whose transaction rolled back, or left by pruned messages), and on request the files of old
messages. A file is kept while any message still lists it or a keeper (the outbox: its unsent
events) says it is needed."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .attachments import PREFIX, keepers, storage
from .models import Message

#: Files younger than this are never orphans: an emit() may not have committed yet.
DEFAULT_GRACE = timedelta(hours=24)


def needed_paths(messages=None) -> set[str]:
    """Paths the messages (all by default) and the keepers refer to."""
    rows = (Message.objects.all() if messages is None else messages).exclude(attachments=[])
    paths = {
        item["path"]
        for listed in rows.values_list("attachments", flat=True).iterator()
        for item in listed or ()
        if isinstance(item, dict) and item.get("path")
    }
    for keeper in keepers:
        paths |= keeper()
    return paths


def stored_paths() -> list[str]:
    target = storage()
    if not target.exists(PREFIX):
        return []
    paths = []
    for folder in target.listdir(PREFIX)[0]:
        paths += [f"{PREFIX}/{folder}/{name}" for name in target.listdir(f"{PREFIX}/{folder}")[1]]
    return paths


def remove_orphans(grace: timedelta = DEFAULT_GRACE) -> int:
    """Delete stored files older than ``grace`` that no message or unsent event lists."""
    target = storage()
    cutoff = timezone.now() - grace
    needed = needed_paths()
    removed = 0
    for path in stored_paths():
        if path in needed:
            continue
        if grace:
            try:
                if target.get_modified_time(path) > cutoff:
                    continue
            except NotImplementedError:  # a storage that cannot tell: keep the file
                continue
        target.delete(path)
        removed += 1
    return removed


def prune_old_messages(older_than_days: float) -> int:
    """Delete the files of messages older than ``older_than_days`` unless a newer message or an
    unsent event still needs them; the messages keep their list (name, type, size, checksum),
    each entry marked ``"pruned": true``. Returns how many files were deleted."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = Message.objects.filter(created_at__lt=cutoff).exclude(attachments=[])
    needed = needed_paths(Message.objects.filter(created_at__gte=cutoff))
    target = storage()
    removed = 0
    for message in old.only("pk", "attachments").iterator():
        listed = [dict(item) for item in message.attachments]
        for item in listed:
            if item.get("pruned"):
                continue
            if item["path"] not in needed:
                if target.exists(item["path"]):
                    target.delete(item["path"])
                    removed += 1
                item["pruned"] = True
        if listed != message.attachments:
            Message.objects.filter(pk=message.pk).update(attachments=listed)
    return removed
