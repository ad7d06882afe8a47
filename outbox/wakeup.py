"""After a commit that emitted events, ask django-q2 to drain the outbox — coalesced.

Each transaction registers at most one on_commit callback. The callback queues a drain task at
once unless this process queued one less than WAKE_INTERVAL_SECONDS ago; then a single timer
queues one when the interval ends. Many commits therefore cost few enqueues, and the periodic
schedule (``manage.py outbox_schedule``) catches anything a lost wake-up would have missed.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import transaction

from .conf import outbox_settings

logger = logging.getLogger("outbox")

DRAIN_TASK = "outbox.tasks.drain"

_lock = threading.Lock()
_last_enqueue = 0.0
_timer: threading.Timer | None = None


def wake_after_commit(using: str) -> None:
    if not outbox_settings.wake_on_commit:
        return
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        wake()
        return
    if any(callback is wake for _, callback, *_ in connection.run_on_commit):
        return
    transaction.on_commit(wake, using=using)


def wake() -> None:
    global _last_enqueue, _timer
    with _lock:
        wait = _last_enqueue + outbox_settings.wake_interval_seconds - time.monotonic()
        if wait > 0:
            if _timer is None:
                _timer = threading.Timer(wait, _trailing_wake)
                _timer.daemon = True
                _timer.start()
            return
        _last_enqueue = time.monotonic()
    enqueue_drain()


def _trailing_wake() -> None:
    global _timer, _last_enqueue
    with _lock:
        _timer = None
        _last_enqueue = time.monotonic()
    try:
        enqueue_drain()
    finally:
        from django.db import connections

        connections.close_all()


#: Errors already logged with their traceback by this process: each is logged in full once.
_logged_errors: set[str] = set()


def enqueue_drain() -> None:
    from django_q.tasks import async_task

    try:
        async_task(DRAIN_TASK, group="outbox")
    except Exception as exc:
        # The event is committed: a broker that fails must not turn the producer's successful
        # commit into an error. Say what happens to the events, truthfully.
        error = f"{type(exc).__name__}: {exc}"
        first = error not in _logged_errors
        _logged_errors.add(error)
        logger.error(
            "outbox: could not queue a drain task (%s); %s",
            error,
            what_happens_next(),
            exc_info=first,
        )


def what_happens_next() -> str:
    try:
        from django_q.models import Schedule

        scheduled = Schedule.objects.filter(func=DRAIN_TASK).exists()
    except Exception:
        scheduled = False
    if scheduled:
        return (
            "the events wait for the next run of the drain schedule, which needs a qcluster "
            "on a working broker (see `manage.py check`)"
        )
    return (
        "no schedule drains the outbox either, so the events wait until `manage.py "
        "drain_outbox` runs; check Q_CLUSTER (`manage.py check`) and run `manage.py "
        "outbox_schedule`"
    )
