"""django-q2 task entry points. Register the periodic ones with ``manage.py outbox_schedule``."""

from __future__ import annotations

import time

from . import relay, retention
from .outcomes import DrainSummary
from .reconnect import resilient
from .stopping import Stop

#: The drain task stops claiming at this share of the cluster's ``timeout`` (README, "Running the
#: relay under django-q2"), so that it finishes its part, releases the rest and returns before
#: the cluster kills it.
TIMEOUT_SHARE = 0.8


def drain() -> str:
    """Drain until nothing is due, surviving lost database connections, within the budget."""
    stop = Stop(deadline=task_deadline())
    summary = DrainSummary()
    resilient(lambda: relay.drain(stop=stop, summary=summary), stop)
    return str(summary)


def task_deadline() -> float | None:
    """time.monotonic() at TIMEOUT_SHARE of Q_CLUSTER['timeout'] from now; None without one."""
    from django_q.conf import Conf

    timeout = Conf.TIMEOUT
    return time.monotonic() + TIMEOUT_SHARE * float(timeout) if timeout else None


def prune() -> int:
    """Delete finished (dispatched and cancelled) events older than RETENTION_DAYS."""
    return retention.prune()
