"""Retention: finished events (dispatched or cancelled) are deleted after ``RETENTION_DAYS``."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .conf import outbox_settings
from .models import OutboxEvent, OutboxStatus


def prune(older_than_days: float | None = None) -> int:
    """Delete dispatched and cancelled events older than the retention period; never unsent ones."""
    days = outbox_settings.retention_days if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OutboxEvent.objects.filter(
        status__in=[OutboxStatus.DISPATCHED, OutboxStatus.CANCELLED], updated_at__lt=cutoff
    ).delete()
    return deleted
