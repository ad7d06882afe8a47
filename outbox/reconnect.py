"""Surviving the database: a relay whose connection is lost (a server restart, a failover, a
terminated backend) closes its connections, waits a capped, jittered backoff and goes on.

Before it claims again it settles what the fault interrupted: the message outcomes the provider
gave that could not be written (kept in memory by django_communication's Recorder) are
written, and the interrupted batch's events are released (guarded by its claim token), so
nothing is sent twice and nothing waits for a lease to end.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError

from django_communication.recorder import Recorder

from .lease import close_connections, release
from .stopping import Stop

logger = logging.getLogger("outbox")

T = TypeVar("T")

#: What a lost or refused connection raises. Other database errors (a missing table: migrations
#: not run) are configuration errors: they end the relay with their message.
CONNECTION_ERRORS = (OperationalError, InterfaceError)
#: Backoff between attempts to reach the database: from FIRST doubling up to CAP seconds, each
#: wait a random value between half and all of it.
FIRST_SECONDS = 0.1
CAP_SECONDS = 5.0

#: Claim tokens of batches a fault interrupted, released after the reconnect.
interrupted: set[uuid.UUID] = set()


def resilient(step: Callable[[], T], stop: Stop) -> T | None:
    """``step()`` until it returns, reconnecting after each lost connection; None if a stop is
    requested first. What a previous fault left is settled before each try."""
    failures = 0
    last_failure = 0.0
    while not stop.requested:
        try:
            settle()
            return step()
        except CONNECTION_ERRORS as exc:
            # A fault long after the last one starts the backoff again from FIRST_SECONDS.
            failures = failures + 1 if time.monotonic() - last_failure < 2 * CAP_SECONDS else 1
            last_failure = time.monotonic()
            delay = backoff(failures)
            logger.warning(
                "outbox: database connection lost (%s); reconnecting in %.2f s (attempt %d)",
                str(exc).strip() or type(exc).__name__,
                delay,
                failures,
            )
            close_connections()
            stop.wait(delay)
    return None


def settle() -> None:
    """Write the outcomes a fault kept in memory, then release the batches it interrupted."""
    written = Recorder.write_unwritten()
    if written:
        logger.warning(
            "outbox: wrote %d message outcome(s) kept through a lost connection.", written
        )
    for token in list(interrupted):
        released = release(token)
        interrupted.discard(token)
        if released:
            logger.warning("outbox: released %d event(s) of interrupted batch %s", released, token)


def backoff(failures: int) -> float:
    ceiling = min(CAP_SECONDS, FIRST_SECONDS * 2 ** (failures - 1))
    return random.uniform(ceiling / 2, ceiling)
