"""The claim: lease a batch of due events to one relay, committed before any I/O.

Due means ``pending`` with ``available_at <= now`` and, for an event with an ordering key, no
earlier ``pending`` event of its key (due, leased to a relay, backing off or delayed): at most
one event per key per claim, and none while a relay holds the one before it. The statement is
SQL written here, not the ORM's: Django has no public way to return the rows an UPDATE changed
(docs/decisions.md, "The claim is SQL").
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F
from django.utils import timezone

from .conf import outbox_settings
from .models import OutboxEvent, OutboxStatus

#: The due events next in their key's order, oldest first: a range scan of ``outbox_due_idx``;
#: only keyed rows probe ``outbox_ordering_idx`` (whose condition, ``ordering_key IS NOT NULL``,
#: SQLite matches only when the query states it).
DUE_SQL = (
    "SELECT {select} FROM {table} candidate"
    " WHERE candidate.{status} = %s AND candidate.{available_at} <= %s"
    " AND (candidate.{ordering_key} IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM {table} earlier"
    " WHERE earlier.{ordering_key} = candidate.{ordering_key}"
    " AND earlier.{ordering_key} IS NOT NULL AND earlier.{status} = %s"
    " AND (earlier.{ordering_seq} < candidate.{ordering_seq}"
    " OR (earlier.{ordering_seq} = candidate.{ordering_seq} AND earlier.{pk} < candidate.{pk}))))"
    " ORDER BY candidate.{available_at} LIMIT {limit}{lock}"
)

#: One statement picks the rows and returns them. PostgreSQL's subquery locks them, skipping
#: rows another relay holds, and rechecks that they are still due. SQLite has no row locks, but
#: one statement reads and writes under one lock: it waits for the write lock and sees current
#: rows, or fails (a transaction that read first could not wait). The outer WHERE is the
#: primary key only, so that no planner walks the due rows a second time.
CLAIM_SQL = (
    "UPDATE {table} SET {claim_token} = %s, {available_at} = %s, {attempts} = {attempts} + 1"
    " WHERE {pk} IN ({due}) RETURNING {columns}"
)


def claim(batch_size: int, token: uuid.UUID | None = None) -> tuple[uuid.UUID, list[OutboxEvent]]:
    """Lease up to ``batch_size`` due events to this relay; commit before returning. A caller
    that chooses the ``token`` can release the batch even if the commit's answer was lost."""
    using = router.db_for_write(OutboxEvent)
    connection = connections[using]
    token = token or uuid.uuid4()
    now = timezone.now()
    lease_until = now + timedelta(seconds=outbox_settings.lease_seconds)
    events = OutboxEvent.objects.using(using)
    features = connection.features
    if features.can_return_columns_from_insert and features.allow_sliced_subqueries_with_in:
        # PostgreSQL, SQLite 3.35+.
        sql, params = claim_sql(connection, token, lease_until, now, batch_size)
        with transaction.atomic(using=using):
            claimed = list(events.raw(sql, params))
        return token, sorted(claimed, key=lambda event: (event.created_at, str(event.pk)))
    with transaction.atomic(using=using):
        sql, params = due_sql(connection, ["pk"], now, batch_size)
        ids = [event.pk for event in events.raw(sql, params)]
        if not ids:
            return token, []
        # "Still due" again: without row locks, a relay that claimed them meanwhile wins.
        events.filter(status=OutboxStatus.PENDING, available_at__lte=now, pk__in=ids).update(
            claim_token=token, available_at=lease_until, attempts=F("attempts") + 1
        )
    return token, list(events.filter(pk__in=ids, claim_token=token).order_by("created_at"))


def due_sql(
    connection: BaseDatabaseWrapper,
    fields: list[str],
    now: datetime,
    limit: int,
    lock: bool = True,
) -> tuple[str, list[object]]:
    """SELECT ``fields`` of the first ``limit`` events due at ``now`` (DUE_SQL); with ``lock``,
    locking them, skipping locked ones, where the database can."""
    skip_locked = lock and connection.features.has_select_for_update_skip_locked
    names = columns(connection)
    sql = DUE_SQL.format(
        select=", ".join(f"candidate.{names[name]}" for name in fields),
        limit=int(limit),
        lock=" FOR UPDATE SKIP LOCKED" if skip_locked else "",
        **names,
    )
    pending = db_value(connection, "status", OutboxStatus.PENDING)
    return sql, [pending, db_value(connection, "available_at", now), pending]


def claim_sql(
    connection: BaseDatabaseWrapper,
    token: uuid.UUID,
    lease_until: datetime,
    now: datetime,
    limit: int,
) -> tuple[str, list[object]]:
    """UPDATE … RETURNING (CLAIM_SQL): lease the events ``due_sql`` picks, return every column."""
    due, due_params = due_sql(connection, ["pk"], now, limit)
    names = columns(connection)
    every_column = ", ".join(
        connection.ops.quote_name(field.column) for field in OutboxEvent._meta.concrete_fields
    )
    sql = CLAIM_SQL.format(due=due, columns=every_column, **names)
    params = [
        db_value(connection, "claim_token", token),
        db_value(connection, "available_at", lease_until),
        *due_params,
    ]
    return sql, params


def columns(connection: BaseDatabaseWrapper) -> dict[str, str]:
    """The quoted table and column names the statements use."""
    meta = OutboxEvent._meta
    quote = connection.ops.quote_name
    names = ["status", "available_at", "ordering_key", "ordering_seq", "claim_token", "attempts"]
    quoted = {name: quote(meta.get_field(name).column) for name in names}
    return {"table": quote(meta.db_table), "pk": quote(meta.pk.column), **quoted}


def db_value(connection: BaseDatabaseWrapper, name: str, value: object) -> object:
    return OutboxEvent._meta.get_field(name).get_db_prep_value(value, connection)
