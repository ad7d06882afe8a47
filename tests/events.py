"""Helpers on outbox event rows, for the tests in this process and the ones with relays."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from outbox.models import OutboxEvent, OutboxStatus


def make_event(status: str = OutboxStatus.PENDING, **fields) -> OutboxEvent:
    """A ``booking.confirmed`` event for ref BK1, unless ``fields`` say otherwise; its
    timestamps as given (``updated_at`` too, which save() would overwrite)."""
    updated_at = fields.pop("updated_at", None)
    fields = {"event_type": "booking.confirmed", "context": {"ref": "BK1"}, **fields}
    event = OutboxEvent.objects.create(status=status, **fields)
    if updated_at is not None:
        OutboxEvent.objects.filter(pk=event.pk).update(updated_at=updated_at)
        event.refresh_from_db()
    return event


def reload(event: OutboxEvent) -> OutboxEvent:
    return OutboxEvent.objects.get(pk=event.pk)


def make_due() -> None:
    """Every event due now: what waiting for a backoff would do, at once."""
    OutboxEvent.objects.update(available_at=timezone.now() - timedelta(seconds=1))


def end_leases() -> None:
    """Move every lease's end into the past: what waiting LEASE_SECONDS would do, at once."""
    leased = OutboxEvent.objects.filter(claim_token__isnull=False)
    assert leased.update(available_at=timezone.now() - timedelta(seconds=1))


def dispatched_count() -> int:
    return OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count()
