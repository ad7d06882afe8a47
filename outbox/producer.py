"""emit(): record an event in the caller's transaction; cancel(): take back unsent ones."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from django_communication.idempotency import insert_or_fetch
from django_communication.inserts import insert_rows

from .building import build_event, reference
from .exceptions import InvalidEventError
from .models import OutboxEvent, OutboxStatus
from .operations import open_events
from .wakeup import wake_after_commit

logger = logging.getLogger("outbox")


def emit(
    event_type: str,
    *,
    to: models.Model | None = None,
    context: dict[str, Any] | None = None,
    related_object: models.Model | None = None,
    channel: str | None = None,
    idempotency_key: str | None = None,
    available_at: datetime | None = None,
    ordering_key: str | None = None,
    language: str | None = None,
    attachments: list[Any] | None = None,
    using: str | None = None,
) -> OutboxEvent:
    """Write one OutboxEvent on the caller's connection, inside the caller's transaction.

    Nothing is sent now: the relay dispatches the event after the commit, and never if the
    transaction rolls back. A repeated ``idempotency_key`` returns the existing event. Events
    with the same ``ordering_key`` are dispatched one at a time, in the order they were emitted.
    ``language`` (a code of ``settings.LANGUAGES``) is the language of its messages unless the
    rule sets one. ``attachments`` (as send() takes them) are stored now, once each, and go
    with the event's email messages; a rolled-back emit() leaves files that the retention job
    removes.
    """
    event = build_event(
        event_type,
        to=to,
        context=context,
        related_object=related_object,
        channel=channel,
        idempotency_key=idempotency_key,
        available_at=available_at,
        ordering_key=ordering_key,
        language=language,
        attachments=attachments,
    )
    using = using or router.db_for_write(OutboxEvent)
    if idempotency_key:
        event = insert_once(event, using)
    else:
        insert_rows([event], using)
    wake_after_commit(using)
    return event


def emit_many(events: Iterable[dict[str, Any]], *, using: str | None = None) -> list[OutboxEvent]:
    """emit() for many events in one bulk INSERT; each item holds emit()'s keyword arguments
    plus ``event_type``. Items whose idempotency key already exists are skipped; returns the
    events written."""
    built = [build_event(**item) for item in events]
    using = using or router.db_for_write(OutboxEvent)
    keys = [event.idempotency_key for event in built if event.idempotency_key]
    if not keys:
        written = OutboxEvent.objects.using(using).bulk_create(built, batch_size=500)
    else:
        taken = set(
            OutboxEvent.objects.using(using)
            .filter(idempotency_key__in=keys)
            .values_list("idempotency_key", flat=True)
        )
        fresh = []
        for event in built:  # a key repeated among the items is written once, too
            if event.idempotency_key not in taken:
                fresh.append(event)
                if event.idempotency_key:
                    taken.add(event.idempotency_key)
        # Not ignore_conflicts, which would return the events without their primary keys.
        try:
            with transaction.atomic(using=using):
                written = OutboxEvent.objects.using(using).bulk_create(fresh, batch_size=500)
        except IntegrityError:
            # A concurrent producer took one of the keys since the check: one by one, as emit().
            written = []
            for event in fresh:
                event.pk, event._state.adding = None, True
                if not event.idempotency_key:
                    event.save(force_insert=True, using=using)
                    written.append(event)
                elif insert_once(event, using) is event:
                    written.append(event)
    if written:
        wake_after_commit(using)
    return written


class Cancelled(int):
    """cancel()'s count of cancelled events, with ``in_flight``: the matching events it left
    alone because a relay holds them right now (their messages may be on their way)."""

    in_flight: int

    def __new__(cls, cancelled: int, in_flight: int = 0) -> Cancelled:
        count = super().__new__(cls, cancelled)
        count.in_flight = in_flight
        return count


def cancel(
    *,
    idempotency_key: str | None = None,
    related_object: models.Model | None = None,
    event_type: str | None = None,
    by: str = "the application",
    using: str | None = None,
) -> Cancelled:
    """Cancel the unsent (pending or dead) events with this idempotency key or related object,
    optionally only those of ``event_type``, in the caller's transaction: a rollback cancels
    nothing. Returns how many it cancelled (an int), with ``.in_flight``: how many it skipped
    because a relay is working on them under a live lease. ``last_error`` records
    ``Cancelled by <by>``. Dispatched and already cancelled events are left as they are.
    """
    if not idempotency_key and related_object is None:
        raise InvalidEventError("cancel() needs an idempotency_key or a related_object.")
    using = using or router.db_for_write(OutboxEvent)
    events = OutboxEvent.objects.using(using)
    if idempotency_key:
        events = events.filter(idempotency_key=idempotency_key)
    if related_object is not None:
        probe = OutboxEvent()
        try:
            reference(probe, "related", related_object)
        except InvalidEventError:
            raise InvalidEventError(
                f"cancel(related_object=...) must be a saved model instance, got "
                f"{related_object!r}."
            ) from None
        events = events.filter(
            related_content_type=probe.related_content_type,
            related_object_id=probe.related_object_id,
        )
    if event_type is not None:
        events = events.filter(event_type=event_type)
    now = timezone.now()
    cancelled = open_events(events, now).update(
        status=OutboxStatus.CANCELLED,
        last_error=f"Cancelled by {by}" if by else "Cancelled",
        claim_token=None,
        updated_at=now,
    )
    # Counted after the UPDATE: on PostgreSQL it waited for a relay's concurrent claim, if any.
    in_flight = events.filter(
        status=OutboxStatus.PENDING, claim_token__isnull=False, available_at__gt=now
    ).count()
    if in_flight:
        logger.warning(
            "outbox: cancel() left %s event(s) a relay is dispatching right now", in_flight
        )
    return Cancelled(cancelled, in_flight)


def insert_once(event: OutboxEvent, using: str) -> OutboxEvent:
    events = OutboxEvent.objects.using(using)
    existing = events.filter(idempotency_key=event.idempotency_key).first()
    if existing is not None:
        return existing
    return insert_or_fetch(
        event, "idempotency_key", using=using, insert=lambda: insert_rows([event], using)
    )
