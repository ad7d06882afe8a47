"""Leases: a claimed batch is renewed while its relay works on it (the heartbeat), and given back
at once when the relay will not finish it (shutdown, a lost database connection).

Every statement is guarded by the claim token: it changes only the rows still leased to this
batch, never one another relay took over or one already finalized.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta

from django.db import Error, connections
from django.db.models import F
from django.utils import timezone

from .conf import outbox_settings
from .models import OutboxEvent

logger = logging.getLogger("outbox")


def renew(token: uuid.UUID) -> int:
    """Extend the lease of the events still held by ``token`` by LEASE_SECONDS from now."""
    until = timezone.now() + timedelta(seconds=outbox_settings.lease_seconds)
    return OutboxEvent.objects.filter(claim_token=token).update(available_at=until)


def release(token: uuid.UUID, ids: Iterable[object] | None = None) -> int:
    """Give back the events still held by ``token`` (only ``ids``, if given): due at once, and
    the claim's attempt not counted, since none of their messages was sent by it."""
    events = OutboxEvent.objects.filter(claim_token=token)
    if ids is not None:
        events = events.filter(pk__in=list(ids))
    return events.update(claim_token=None, available_at=timezone.now(), attempts=F("attempts") - 1)


def heartbeat_interval() -> float:
    return outbox_settings.lease_seconds / 3


@contextmanager
def heartbeat(token: uuid.UUID) -> Iterator[None]:
    """Renew the lease of ``token``'s events every third of LEASE_SECONDS while the block runs,
    from a thread with its own database connection (opened only if the block outlasts a third
    of the lease). A failed renewal is logged and tried again at the next beat."""
    done = threading.Event()
    thread = threading.Thread(
        target=beat, args=(token, done, heartbeat_interval()), name="outbox-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def beat(token: uuid.UUID, done: threading.Event, interval: float) -> None:
    try:
        while not done.wait(interval):
            try:
                renew(token)
            except Error as exc:
                logger.warning("outbox: renewing the lease of batch %s failed: %s", token, exc)
                close_connections()
    finally:
        close_connections()


def close_connections() -> None:
    """Close this thread's database connections, broken ones included."""
    for connection in connections.all(initialized_only=True):
        with suppress(Error):
            connection.close()
