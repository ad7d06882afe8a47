"""Finalizing: each claimed event becomes ``dispatched``, ``pending`` again after a backoff, or
``dead``, by UPDATEs guarded by the claim token, so a relay whose lease ran out changes
nothing."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from .conf import outbox_settings
from .logging import log_event, logger
from .models import OutboxEvent, OutboxStatus
from .outcomes import DrainSummary, EventOutcome


def finalize(token: uuid.UUID, outcomes: list[EventOutcome]) -> DrainSummary:
    summary = DrainSummary()
    claimed = OutboxEvent.objects.filter(claim_token=token)
    now = timezone.now()
    dispatched = [o.event.pk for o in outcomes if o.ok]
    if dispatched:
        summary.dispatched = claimed.filter(pk__in=dispatched).update(
            status=OutboxStatus.DISPATCHED,
            dispatched_at=now,
            last_error="",
            claim_token=None,
            updated_at=now,
        )
        lost = len(dispatched) - summary.dispatched
        summary.lost_lease += lost
        # Checked once per batch: without INFO logging, no per-event work on the hot path.
        if logger.isEnabledFor(logging.INFO) or (lost and logger.isEnabledFor(logging.WARNING)):
            log_dispatched(token, [o for o in outcomes if o.ok], lost, now)
    for outcome in outcomes:
        if outcome.ok:
            continue
        event = outcome.event
        error = "; ".join(outcome.errors)
        if outcome.partly_sent:
            # The admin shows last_error; the sent messages are not sent again on a retry.
            error = f"{outcome.sent} of {outcome.messages} messages sent; {error}"
        if outcome.retryable and event.attempts < outbox_settings.max_attempts:
            fields = {"available_at": now + backoff(event.attempts)}
            counter = "retried"
        else:
            if outcome.retryable:
                error = f"Gave up after {event.attempts} attempts: {error}"
            fields = {"status": OutboxStatus.DEAD}
            counter = "dead"
        changed = claimed.filter(pk=event.pk).update(
            last_error=error, claim_token=None, updated_at=now, **fields
        )
        if changed:
            setattr(summary, counter, getattr(summary, counter) + 1)
            summary.partly_sent += outcome.partly_sent
            retry_at = fields.get("available_at")
            log_event(
                logging.WARNING,
                counter,
                str(token),
                event,
                providers=outcome.providers,
                error=error,
                retry_at=retry_at.isoformat() if retry_at else "",
                sent=outcome.fan_out,
            )
        else:
            summary.lost_lease += 1
            log_event(
                logging.WARNING,
                "lost_lease",
                str(token),
                event,
                providers=outcome.providers,
                error=error,
            )
    return summary


def log_dispatched(
    token: uuid.UUID, outcomes: list[EventOutcome], lost: int, now: datetime
) -> None:
    """One record per dispatched event; ``lost_lease`` for those another relay took over (found
    with one query, only when the batch's UPDATE matched fewer rows than it sent)."""
    lost_ids: set = set()
    if lost:
        ids = [outcome.event.pk for outcome in outcomes]
        ours = OutboxEvent.objects.filter(
            pk__in=ids, status=OutboxStatus.DISPATCHED, dispatched_at=now
        )
        lost_ids = set(ids) - set(ours.values_list("pk", flat=True))
    token_text = str(token)
    for outcome in outcomes:
        if outcome.event.pk in lost_ids:
            log_event(logging.WARNING, "lost_lease", token_text, outcome.event, outcome.providers)
        else:
            log_event(
                logging.INFO,
                "dispatched",
                token_text,
                outcome.event,
                outcome.providers,
                sent=outcome.fan_out,
            )


def backoff(attempts: int) -> timedelta:
    """Exponential backoff, capped, with equal jitter: a delay between half and all of
    ``BACKOFF_SECONDS * 2 ** (attempts - 1)`` (at most ``BACKOFF_MAX_SECONDS``)."""
    ceiling = min(
        outbox_settings.backoff_max_seconds,
        outbox_settings.backoff_seconds * 2 ** max(attempts - 1, 0),
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))
