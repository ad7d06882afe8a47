"""The relay: drain the outbox, batch by batch.

claim (one short transaction, committed before any I/O) → plan (load recipients and related
objects, one query per content type; one SendRequest per rule with a deterministic idempotency
key) → dispatch (``send_many()`` for the batch: composed a chunk at a time while
OUTBOX["CONCURRENCY"] provider calls are in flight) → finalize (UPDATEs guarded by the claim
token, so a relay whose lease ran out changes nothing). While a batch is worked on, its lease is
renewed (lease.heartbeat); when a stop is requested, no new chunk is composed and the events not
started are released at once. A lost database connection interrupts the batch: reconnect.py
settles it after the reconnect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.db import Error

from django_communication.ratelimit import send_intervals

from .async_commit import relaxed_commits
from .claim import claim
from .conf import outbox_settings
from .dispatch import dispatch
from .finalize import finalize
from .lease import heartbeat, release
from .logging import log_event, logger
from .models import OutboxEvent
from .outcomes import DrainSummary, EventOutcome
from .plan import plan_batch
from .reconnect import interrupted
from .stopping import NEVER, Stop


def drain(
    batch_size: int | None = None,
    limit: int | None = None,
    progress: Callable[[DrainSummary], None] | None = None,
    stop: Stop = NEVER,
    summary: DrainSummary | None = None,
    concurrency: int | None = None,
) -> DrainSummary:
    """Dispatch due events batch by batch until none is due, ``limit`` were processed, or a
    stop is requested, up to ``concurrency`` (default OUTBOX["CONCURRENCY"]) provider calls in
    flight. Counts into ``summary`` if given: what a drain that a lost connection interrupted
    did is not lost with it."""
    summary = DrainSummary() if summary is None else summary
    concurrency = concurrency or outbox_settings.concurrency
    batch_size = lease_safe_batch_size(batch_size or outbox_settings.batch_size)
    with relaxed_commits():
        while (limit is None or summary.processed < limit) and not stop.requested:
            size = batch_size if limit is None else min(batch_size, limit - summary.processed)
            token = uuid.uuid4()
            try:
                _, events = claim(size, token)
                if not events:
                    break
                if logger.isEnabledFor(logging.DEBUG):
                    for event in events:
                        log_event(logging.DEBUG, "claimed", str(token), event)
                summary.add(process_batch(token, events, stop, concurrency))
            except Error:
                interrupted.add(token)  # released after the reconnect (reconnect.settle)
                raise
            if progress:
                progress(summary)
    return summary


def lease_safe_batch_size(requested: int) -> int:
    """``requested``, or fewer events when the slowest send-rate limit (RATE_LIMITS) could not
    send a whole batch within half of LEASE_SECONDS, so that one batch does not hold events
    back much longer than a lease even though the heartbeat keeps it."""
    intervals = send_intervals()
    if not intervals:
        return requested
    fits = int(outbox_settings.lease_seconds / 2 / max(intervals.values()))
    return max(1, min(requested, fits))


def process_batch(
    token: uuid.UUID, events: list[OutboxEvent], stop: Stop = NEVER, concurrency: int = 1
) -> DrainSummary:
    """Plan, send and finalize one claimed batch, renewing its lease meanwhile; on a stop
    request, send what is composed already and release the events not started."""
    outcomes = [EventOutcome(event) for event in events]
    with heartbeat(token):
        planned = plan_batch(outcomes)
        sent, unstarted = dispatch(planned, concurrency, stop)
        skipped = {id(outcome) for outcome in unstarted}
        summary = finalize(token, [o for o in outcomes if id(o) not in skipped])
        summary.sent = sent
        if unstarted:
            summary.released = release(token, [outcome.event.pk for outcome in unstarted])
    return summary
