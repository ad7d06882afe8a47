"""Waiting for a state, never for a time: poll until a condition holds, failing only after a
deadline that a working test never reaches."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from django.db import connection

#: Upper bound on any wait; reached only when the code under test is broken.
DEADLINE_SECONDS = 30


def wait_for(
    condition: Callable[[], object],
    what: str,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.01,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            # Not pytest.fail: this may run in a request's thread, whose handlers catch Exception.
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def backend_pid() -> int:
    """This thread's PostgreSQL backend, for ``waiting_on_a_lock`` in another thread."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waiting_on_a_lock(pids: Iterable[int]) -> bool:
    """Whether one of these PostgreSQL backends waits for a lock another one holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND pid = ANY(%s))",
            [list(pids)],
        )
        return cursor.fetchone()[0]
