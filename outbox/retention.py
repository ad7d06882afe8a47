"""Retention: finished events (dispatched or cancelled) are deleted after ``RETENTION_DAYS``;
stored attachments nothing refers to (those of rolled-back emits) are deleted with them."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from django_communication.attachment_retention import DEFAULT_GRACE, remove_orphans

from .conf import outbox_settings
from .models import OutboxEvent, OutboxStatus


def prune(older_than_days: float | None = None, attachment_grace: timedelta = DEFAULT_GRACE) -> int:
    """Delete dispatched and cancelled events older than the retention period; never unsent ones.
    Then delete stored attachments older than ``attachment_grace`` that no message or unsent
    event lists."""
    days = outbox_settings.retention_days if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OutboxEvent.objects.filter(
        status__in=[OutboxStatus.DISPATCHED, OutboxStatus.CANCELLED], updated_at__lt=cutoff
    ).delete()
    remove_orphans(attachment_grace)
    return deleted


def unsent_attachment_paths() -> set[str]:
    """The stored files that pending and dead events (which may still be sent) refer to."""
    listed = (
        OutboxEvent.objects.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.DEAD])
        .exclude(attachments=[])
        .values_list("attachments", flat=True)
    )
    return {item["path"] for items in listed.iterator() for item in items or () if "path" in item}
