"""The relay: drain the outbox, batch by batch.

claim (one short transaction, committed before any I/O) → plan (load recipients and related
objects, one query per content type; one SendRequest per rule with a deterministic idempotency
key) → dispatch (``send_many()`` for the batch) → finalize (UPDATEs guarded by the claim
token, so a relay whose lease ran out changes nothing).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django_communication.ratelimit import send_intervals

from .async_commit import relaxed_commits
from .claim import claim
from .conf import outbox_settings
from .dispatch import dispatch
from .finalize import finalize
from .logging import log_event, logger
from .models import OutboxEvent
from .outcomes import DrainSummary, EventOutcome
from .plan import plan_batch


def drain(
    batch_size: int | None = None,
    limit: int | None = None,
    progress: Callable[[DrainSummary], None] | None = None,
) -> DrainSummary:
    """Dispatch due events batch by batch until none is due (or ``limit`` were processed)."""
    summary = DrainSummary()
    batch_size = lease_safe_batch_size(batch_size or outbox_settings.batch_size)
    with relaxed_commits():
        while limit is None or summary.processed < limit:
            size = batch_size if limit is None else min(batch_size, limit - summary.processed)
            token, events = claim(size)
            if not events:
                break
            if logger.isEnabledFor(logging.DEBUG):
                for event in events:
                    log_event(logging.DEBUG, "claimed", str(token), event)
            summary.add(process_batch(token, events))
            if progress:
                progress(summary)
    return summary


def lease_safe_batch_size(requested: int) -> int:
    """``requested``, or fewer events when the slowest send-rate limit (RATE_LIMITS) could not
    send a whole batch within half of LEASE_SECONDS: a lease must outlast its batch."""
    intervals = send_intervals()
    if not intervals:
        return requested
    fits = int(outbox_settings.lease_seconds / 2 / max(intervals.values()))
    return max(1, min(requested, fits))


def process_batch(token: uuid.UUID, events: list[OutboxEvent]) -> DrainSummary:
    """Plan, send and finalize one claimed batch."""
    outcomes = [EventOutcome(event) for event in events]
    sent = dispatch(plan_batch(outcomes))
    summary = finalize(token, outcomes)
    summary.sent = sent
    return summary
