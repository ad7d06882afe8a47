"""Attachments: what send() and emit() accept, checked and stored once, by content, in
``COMMUNICATION["ATTACHMENT_STORAGE"]``; a Message (and an outbox event) keeps only references.

Accepted items: ``(filename, content, mimetype)`` tuples (as ``EmailMessage.attachments``), an
``Attachment`` (which may carry a ``content_id`` for inline ``cid:`` images), a Django
``File``/``FieldFile``, or the name of a file in the attachment storage.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from .conf import comm_settings
from .exceptions import InvalidArgumentError

#: Where stored files go inside the storage: ``<PREFIX>/<sha256[:2]>/<sha256>``.
PREFIX = "communication-attachments"

#: Channels whose messages carry attachments.
ATTACHMENT_CHANNELS = frozenset({"email"})


@dataclass(frozen=True)
class Attachment:
    """A file to attach. With ``content_id`` it is inline: the HTML shows it as ``cid:<id>``."""

    filename: str
    content: bytes
    mimetype: str
    content_id: str | None = None


@dataclass(frozen=True)
class StoredAttachment:
    """A reference to a stored attachment, as the audit log keeps it."""

    name: str
    mimetype: str
    size: int
    sha256: str
    path: str
    content_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "mimetype": self.mimetype,
            "size": self.size,
            "sha256": self.sha256,
            "path": self.path,
        }
        if self.content_id:
            data["content_id"] = self.content_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredAttachment:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})

    def read(self) -> bytes:
        with storage().open(self.path, "rb") as handle:
            return handle.read()


def storage() -> Storage:
    return storages[comm_settings.attachment_storage]


Given = Attachment | StoredAttachment


def normalise(items: Iterable[Any] | None) -> list[Given]:
    """The ``attachments`` argument as Attachment objects (files already stored, as the outbox
    passes them, stay StoredAttachment); InvalidArgumentError naming the item that is none of
    the accepted kinds."""
    if items is None:
        return []
    if isinstance(items, (str, bytes, tuple, File)):
        raise InvalidArgumentError("attachments must be a list of files, not a single one.")
    return [one(item, index) for index, item in enumerate(items)]


def one(item: Any, index: int) -> Given:
    where = f"attachments[{index}]"
    if isinstance(item, StoredAttachment):
        return item
    if isinstance(item, Attachment):
        return checked(item, where)
    if isinstance(item, tuple) and len(item) in (2, 3):
        filename, content, *rest = item
        mimetype = rest[0] if rest else None
        if isinstance(content, str):
            content = content.encode()
        if not isinstance(filename, str) or not isinstance(content, bytes):
            raise InvalidArgumentError(f"{where} must be (filename: str, content, mimetype).")
        return checked(Attachment(filename, content, mimetype or guess(filename)), where)
    if isinstance(item, File):
        item.open("rb")
        try:
            content = item.read()
        finally:
            item.close()
        filename = posixpath.basename(item.name or "") or "attachment"
        if isinstance(content, str):
            content = content.encode()
        return checked(Attachment(filename, content, guess(filename)), where)
    if isinstance(item, str):
        if not storage().exists(item):
            raise InvalidArgumentError(
                f"{where}: no file {item!r} in the attachment storage "
                f"{comm_settings.attachment_storage!r}."
            )
        with storage().open(item, "rb") as handle:
            content = handle.read()
        filename = posixpath.basename(item)
        return checked(Attachment(filename, content, guess(filename)), where)
    raise InvalidArgumentError(
        f"{where} is a {type(item).__name__}: pass (filename, content, mimetype), an "
        "Attachment, a File or a path in the attachment storage."
    )


def checked(attachment: Attachment, where: str) -> Attachment:
    if not attachment.filename or "/" in attachment.filename or "\n" in attachment.filename:
        raise InvalidArgumentError(f"{where} needs a file name without '/' or line breaks.")
    if "/" not in (attachment.mimetype or ""):
        raise InvalidArgumentError(f"{where} has no MIME type of the form 'type/subtype'.")
    return attachment


def guess(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def check_channel(attachments: list[Any], channel: str) -> None:
    if attachments and channel not in ATTACHMENT_CHANNELS:
        raise InvalidArgumentError(
            f"A {channel} message cannot carry attachments: send them by email."
        )


def size_of(attachment: Given) -> int:
    if isinstance(attachment, StoredAttachment):
        return attachment.size
    return len(attachment.content)


def check_size(attachments: list[Given]) -> None:
    """``ATTACHMENT_MAX_BYTES`` for the total size of one message's files."""
    limit = comm_settings.attachment_max_bytes
    total = sum(size_of(attachment) for attachment in attachments)
    if total > limit:
        raise InvalidArgumentError(
            f"The attachments total {total} bytes, more than the {limit} allowed "
            "(COMMUNICATION['ATTACHMENT_MAX_BYTES'])."
        )


def encoded_size(body_bytes: int, attachments: Iterable[Given]) -> int:
    """The size of a MIME message with these files, base64 in 76-character lines, headers
    allowed for (a close upper estimate, for provider limits such as SES's 40 MB)."""
    total = body_bytes + 2048
    for attachment in attachments:
        size = size_of(attachment)
        encoded = 4 * ((size + 2) // 3)
        total += encoded + 2 * (encoded // 76 + 1) + 512
    return total


def store(attachments: list[Given]) -> list[StoredAttachment]:
    """Each file saved once in the storage, named by its checksum (a file already there is
    not written again)."""
    stored = []
    target = storage()
    for attachment in attachments:
        if isinstance(attachment, StoredAttachment):
            stored.append(attachment)
            continue
        digest = hashlib.sha256(attachment.content).hexdigest()
        path = f"{PREFIX}/{digest[:2]}/{digest}"
        if not target.exists(path):
            path = target.save(path, ContentFile(attachment.content))
        stored.append(
            StoredAttachment(
                name=attachment.filename,
                mimetype=attachment.mimetype,
                size=len(attachment.content),
                sha256=digest,
                path=path,
                content_id=attachment.content_id,
            )
        )
    return stored


def stored_list(data: list[dict[str, Any]] | None) -> list[StoredAttachment]:
    return [StoredAttachment.from_dict(item) for item in data or ()]


#: Callables answering the storage paths something outside this app still needs (the outbox's
#: unsent events): registered by that app, asked before any file is removed.
keepers: list[Callable[[], set[str]]] = []


def register_keeper(keeper: Callable[[], set[str]]) -> None:
    if keeper not in keepers:
        keepers.append(keeper)
