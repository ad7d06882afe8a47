"""How the outbox is doing, in a few figures: for ``outbox_status``, the health view and the admin.

Two queries whatever the backlog's shape (three while configuration problems hold events up):

- the **lag**: the oldest due event (``pending`` with ``available_at <= now``), one range scan of
  the due index, with the relay's own SQL (``claim.due_sql``), stopped at the first row;
- everything else in **one aggregate**: the count per status, the events that went ``dead`` in
  the last hour and the events dispatched in the last five minutes (conditional ``COUNT``\\ s).
  This one reads the whole table, which pruning keeps to ``RETENTION_DAYS`` of events.

A claimed event is not due (its ``available_at`` is the end of its lease), nor is one waiting for
a retry, nor one held back by an earlier event of its ordering key; an event whose relay died
becomes due, and counts, when its lease ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Count, Q
from django.utils import timezone

from .claim import due_sql
from .conf import outbox_settings
from .models import OutboxEvent, OutboxStatus
from .outcomes import CONFIGURATION_PROBLEM

#: The window of ``dead_last_hour``.
DEAD_WINDOW = timedelta(hours=1)
#: The window the throughput is measured over.
THROUGHPUT_WINDOW = timedelta(minutes=5)
#: Events waiting because their last attempt met a configuration problem.
CONFIGURATION_WAITING = Q(status=OutboxStatus.PENDING, last_error__contains=CONFIGURATION_PROBLEM)


@dataclass(frozen=True)
class OutboxHealth:
    checked_at: datetime
    #: Events per status, every status present (0 when none).
    counts: dict[str, int]
    #: ``available_at`` of the oldest due event; None when nothing is due.
    oldest_due_at: datetime | None
    #: Events in status ``dead`` last changed within the past hour.
    dead_last_hour: int
    #: Events dispatched within the past five minutes.
    dispatched_recently: int
    lag_threshold_seconds: float
    #: Pending events whose last attempt failed on a configuration problem (missing AWS
    #: credentials, an unknown provider...): they wait for an administrator, not for a relay.
    configuration_problems: int = 0
    #: The ``last_error`` of the latest of them; for the status command, not the public view.
    configuration_error: str = ""

    @property
    def lag_seconds(self) -> float:
        """How long the oldest due event has been waiting; 0 when nothing is due."""
        if self.oldest_due_at is None:
            return 0.0
        return max((self.checked_at - self.oldest_due_at).total_seconds(), 0.0)

    @property
    def dispatched_per_minute(self) -> float:
        return self.dispatched_recently / (THROUGHPUT_WINDOW.total_seconds() / 60)

    @property
    def healthy(self) -> bool:
        return self.lag_seconds <= self.lag_threshold_seconds

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers, ISO 8601 times, no event contents."""
        return {
            "healthy": self.healthy,
            "lag_seconds": round(self.lag_seconds, 3),
            "lag_threshold_seconds": self.lag_threshold_seconds,
            "oldest_due_at": self.oldest_due_at.isoformat() if self.oldest_due_at else None,
            "counts": dict(self.counts),
            "dead_last_hour": self.dead_last_hour,
            "dispatched_last_5_minutes": self.dispatched_recently,
            "dispatched_per_minute": round(self.dispatched_per_minute, 2),
            "configuration_problems": self.configuration_problems,
            "checked_at": self.checked_at.isoformat(),
        }


def outbox_health(
    lag_threshold_seconds: float | None = None, *, using: str | None = None
) -> OutboxHealth:
    """The outbox's figures now; ``healthy`` compares the lag with ``lag_threshold_seconds``
    (default ``OUTBOX["LAG_THRESHOLD_SECONDS"]``)."""
    if lag_threshold_seconds is None:
        lag_threshold_seconds = outbox_settings.lag_threshold_seconds
    now = timezone.now()
    events = OutboxEvent.objects.db_manager(using).order_by()
    sql, params = due_sql(connections[events.db], ["pk", "available_at"], now, 1, lock=False)
    oldest_due = next(iter(events.raw(sql, params)), None)
    oldest_due_at = oldest_due.available_at if oldest_due else None
    figures = events.aggregate(
        **{
            f"status_{status}": Count("pk", filter=Q(status=status))
            for status in OutboxStatus.values
        },
        dead_last_hour=Count(
            "pk", filter=Q(status=OutboxStatus.DEAD, updated_at__gte=now - DEAD_WINDOW)
        ),
        dispatched_recently=Count(
            "pk",
            filter=Q(status=OutboxStatus.DISPATCHED, dispatched_at__gte=now - THROUGHPUT_WINDOW),
        ),
        configuration_problems=Count("pk", filter=CONFIGURATION_WAITING),
    )
    configuration_error = ""
    if figures["configuration_problems"]:
        configuration_error = (
            events.filter(CONFIGURATION_WAITING)
            .order_by("-updated_at")
            .values_list("last_error", flat=True)
            .first()
        ) or ""
    return OutboxHealth(
        checked_at=now,
        counts={status: figures[f"status_{status}"] for status in OutboxStatus.values},
        oldest_due_at=oldest_due_at,
        dead_last_hour=figures["dead_last_hour"],
        dispatched_recently=figures["dispatched_recently"],
        lag_threshold_seconds=float(lag_threshold_seconds),
        configuration_problems=figures["configuration_problems"],
        configuration_error=configuration_error,
    )


def format_seconds(seconds: float) -> str:
    """A duration for people: "0 s", "42 s", "7 min 5 s", "3 h 12 min", "2 d 4 h"."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
