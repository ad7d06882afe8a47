"""Shared send-rate limits: ``COMMUNICATION["RATE_LIMITS"] = {"ses": 14}``.

A limited provider sends at most one message per ``(1 + GUARD) / rate`` seconds, counted across
every process and machine on the database. Each message reserves the next free slot with one
atomic UPDATE of the provider's ``SendRateSlot`` row (``next_at = max(next_at, now) +
interval``, returning the slot), then the sender sleeps until its slot and calls the provider.
The clock is the database's, so machines need not agree on the time. Nothing is
failed or retried: a throttled message only waits, outside any transaction (the UPDATE commits
at once in autocommit mode).

Slots, not a token bucket with a burst: a bucket of capacity R refilled at R/s lets 2R messages
through in some one-second window (a full bucket, then its refill). Evenly spaced slots let at
most R through in any window [t, t + 1). GUARD stretches the spacing by 10 %, so that R + 1
consecutive slots span 1.1 s: the time from a slot to the provider's acceptance varies (sleep
overshoot, the process being scheduled late on a busy machine, the network), and up to 100 ms of
such jitter still keeps every one-second window at or under the limit. (5 % was measured too
little: four relays on a loaded two-core machine lost 50 ms now and then.)

At high rates a batch reserves its slots in blocks (:class:`Slots`): one UPDATE takes the next
``count`` slots (``next_at = max(next_at, now) + count * interval``), about a quarter of a second
of them, never more than the batch still needs. A slot is used only at its time: one that has
passed by more than ``LATE`` seconds (every lane was busy) is skipped, never sent late, so a
block changes nothing in the guarantee above; a skipped or unused slot is only lost throughput.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.db import connections, router, transaction

from .conf import comm_settings
from .models import SendRateSlot

#: Spacing margin: slots are (1 + GUARD) / rate apart.
GUARD = 0.1
#: Seconds of slots one reservation takes at most (at least one slot).
BLOCK_SECONDS = 0.25
#: A slot passed by more than this is skipped rather than used late.
LATE = 0.02

#: One statement takes the next slot and returns it (Unix time on the database's clock).
_RESERVE_SQL = {
    "postgresql": (
        "UPDATE {table} SET next_at = GREATEST(next_at, "
        "EXTRACT(EPOCH FROM clock_timestamp())::float8) + %s WHERE provider = %s "
        "RETURNING next_at - %s"
    ),
    "sqlite": (
        "UPDATE {table} SET next_at = MAX(next_at, (julianday('now') - 2440587.5) * 86400.0) "
        "+ %s WHERE provider = %s RETURNING next_at - %s"
    ),
}
#: The database's time after the reservation committed: the wait is measured from it, so the
#: commit (a WAL flush, SQLite waiting for readers) does not make the send late. SQLite's clock
#: is this machine's, read without a query.
_NOW_SQL = {"postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"}


def send_intervals() -> dict[str, float]:
    """Provider name → seconds between two of its send slots, for the providers RATE_LIMITS
    limits (empty without limits)."""
    limits = comm_settings.rate_limits
    return (
        {name: (1 + GUARD) / float(rate) for name, rate in limits.items() if rate} if limits else {}
    )


def pacer(provider_name: str) -> Callable[[], None] | None:
    """A function that waits for the provider's next send slot, or None if it has no limit."""
    slots = slots_for(provider_name)
    return None if slots is None else slots.wait


def slots_for(provider_name: str) -> Slots | None:
    """The provider's send slots for one batch, or None if it has no limit."""
    interval = send_intervals().get(provider_name)
    return None if interval is None else Slots(provider_name, interval)


class Slots:
    """Send slots of one provider, reserved in blocks for one batch (one thread uses it)."""

    def __init__(self, provider_name: str, interval: float) -> None:
        self.provider_name, self.interval = provider_name, interval
        self.next_at = 0.0  # time.monotonic() of the next reserved slot
        self.left = 0  # reserved slots from next_at on

    def until_next(self, wanted: int = 1) -> float:
        """Seconds until the next usable slot (negative or 0: now), reserving a block of at most
        ``wanted`` slots when none is left; take() then uses it."""
        now = time.monotonic()
        if self.left and self.next_at < now - LATE:
            skipped = min(self.left, math.ceil((now - LATE - self.next_at) / self.interval))
            self.left -= skipped
            self.next_at += skipped * self.interval
        if not self.left:
            count = max(1, min(wanted, int(BLOCK_SECONDS / self.interval)))
            self.next_at = time.monotonic() + reserve(self.provider_name, self.interval, count)
            self.left = count
        return self.next_at - time.monotonic()

    def take(self) -> None:
        self.left -= 1
        self.next_at += self.interval

    def wait(self, wanted: int = 1) -> None:
        """Wait for the next slot and take it (``wanted``: as in until_next())."""
        wait = self.until_next(wanted)
        if wait > 0:
            time.sleep(wait)
        self.take()


def reserve(provider_name: str, interval: float, count: int = 1) -> float:
    """Take the provider's next ``count`` slots; return the seconds until the first."""
    using = router.db_for_write(SendRateSlot)
    connection = connections[using]
    sql = _RESERVE_SQL.get(connection.vendor)
    if sql is None:
        return reserve_locked(using, provider_name, interval, count)
    sql = sql.format(table=connection.ops.quote_name(SendRateSlot._meta.db_table))
    params = [interval * count, provider_name, interval * count]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:  # the provider's first limited send ever
            SendRateSlot.objects.using(using).bulk_create(
                [SendRateSlot(provider=provider_name)], ignore_conflicts=True
            )
            cursor.execute(sql, params)
            row = cursor.fetchone()
        now_sql = _NOW_SQL.get(connection.vendor)
        if now_sql is None:
            now = time.time()
        else:
            cursor.execute(now_sql)
            now = cursor.fetchone()[0]
    return float(row[0]) - float(now)


def reserve_locked(using: str, provider_name: str, interval: float, count: int = 1) -> float:
    """Other databases: the same with a row lock; the clock is this machine's."""
    with transaction.atomic(using=using):
        SendRateSlot.objects.using(using).get_or_create(provider=provider_name)
        slot = SendRateSlot.objects.using(using).select_for_update().get(provider=provider_name)
        start = max(slot.next_at, time.time())
        slot.next_at = start + interval * count
        slot.save(update_fields=["next_at"])
    return start - time.time()
