"""Recording what a provider answered: one UPDATE of the Message by primary key, its SQL built
once per column set.

deliver() writes an outcome the moment the provider answers, so a crash leaves at most the
message in flight unrecorded. For a batch on PostgreSQL through psycopg 3 (autocommit, outside
any transaction) the write is pipelined: ``write()`` sends the UPDATE and returns at once, and
``settle()`` waits for its commit. deliver() settles before the next provider call — the window
stays one message wide — and prepares the next message during the round trip.

Delivery lanes (lanes.py) write the outcomes that arrived together with ``write_many()``: one
transaction, one ``executemany()`` per column set (psycopg 3 pipelines it), one commit.

Pipelined writes bypass Django's cursor, so ``connection.execute_wrapper()`` and
``connection.queries`` do not see them; ``Recorder.pipelined`` counts them.

An outcome the database did not take (the connection was lost) is kept in memory, in
``Recorder.unwritten``, and the DatabaseError raised as before: the caller stops sending.
``write_unwritten()`` writes what was kept once the database answers again (the outbox relay
calls it after each reconnect), so a message the provider accepted is not sent a second time.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from django.db import Error, OperationalError, connections, router, transaction

from .models import Message

TEXT_TYPES = (str, int, uuid.UUID)


class Recorder:
    #: UPDATEs sent pipelined by this process (they never pass through an execute wrapper).
    pipelined: ClassVar[int] = 0

    _sql: ClassVar[dict[tuple[str, tuple[str, ...]], str]] = {}

    #: Outcomes the database did not take, by message id, until write_unwritten() writes them.
    unwritten: ClassVar[dict[Any, tuple[Message, dict[str, Any]]]] = {}

    def __init__(self, pipeline: bool = False) -> None:
        self.using = router.db_for_write(Message)
        self.connection = connections[self.using]
        self.pgconn = pipelined_pgconn(self.connection) if pipeline else None
        self.in_flight: tuple[Message, dict[str, Any]] | None = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()

    def write(self, message: Message, fields: dict[str, Any]) -> None:
        """UPDATE ``fields`` of ``message``; pipelined, it is durable after the next settle().
        If the database does not take it, it is kept (``unwritten``) and the error raised."""
        try:
            self._write(message, fields)
        except Error:
            Recorder.unwritten[message.pk] = (message, fields)
            raise

    def _write(self, message: Message, fields: dict[str, Any]) -> None:
        params = self.params(message, fields)
        if self.pgconn is not None:
            values = [as_text(value) for value in params]
            if all(value is not False for value in values):
                self.settle()
                sql = self.sql(tuple(fields), "${}")
                self.pgconn.send_query_params(sql.encode(), values)
                self.in_flight = (message, fields)
                Recorder.pipelined += 1
                return
        self.settle()
        with self.connection.cursor() as cursor:
            cursor.execute(self.sql(tuple(fields), "%s"), params)

    def write_many(self, writes: list[tuple[Message, dict[str, Any]]]) -> None:
        """write() for each (message, fields), committed together. If the database does not
        take them, they are all kept (``unwritten``) and the error raised."""
        if len(writes) == 1:
            self.write(*writes[0])
            return
        try:
            self.settle()
        except Error:
            Recorder.unwritten.update((message.pk, (message, fields)) for message, fields in writes)
            raise
        try:
            groups: dict[tuple[str, ...], list[list[Any]]] = {}
            for message, fields in writes:
                groups.setdefault(tuple(fields), []).append(self.params(message, fields))
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                for columns, rows in groups.items():
                    cursor.executemany(self.sql(columns, "%s"), rows)
        except Error:
            Recorder.unwritten.update((message.pk, (message, fields)) for message, fields in writes)
            raise

    def params(self, message: Message, fields: dict[str, Any]) -> list[Any]:
        meta, connection = Message._meta, self.connection
        params = [
            meta.get_field(name).get_db_prep_save(value, connection)
            for name, value in fields.items()
        ]
        params.append(meta.pk.get_db_prep_value(message.pk, connection))
        return params

    def settle(self) -> None:
        """Wait until the pipelined write, if any, is committed; raise OperationalError if not
        (and keep its outcome in ``unwritten``)."""
        if self.in_flight is None:
            return
        message, fields = self.in_flight
        self.in_flight = None
        assert self.pgconn is not None
        from psycopg import pq

        errors = []
        try:
            while (result := self.pgconn.get_result()) is not None:
                if result.status != pq.ExecStatus.COMMAND_OK:
                    errors.append((result.error_message or b"").decode(errors="replace").strip())
        except Exception as exc:  # psycopg's own OperationalError: the connection is gone
            errors.append(str(exc))
        if errors or self.pgconn.status != pq.ConnStatus.OK:
            self.connection.errors_occurred = True
            Recorder.unwritten[message.pk] = (message, fields)
            raise OperationalError(f"recording a message outcome failed: {'; '.join(errors)}")

    @classmethod
    def write_unwritten(cls) -> int:
        """Write the outcomes the database did not take before; raise its error if it still
        does not. Returns how many were written."""
        written = 0
        for pk, (message, fields) in list(cls.unwritten.items()):
            Recorder().write(message, fields)
            del cls.unwritten[pk]
            written += 1
        return written

    def sql(self, columns: tuple[str, ...], placeholder: str) -> str:
        key = (f"{self.using}:{placeholder}", columns)
        sql = self._sql.get(key)
        if sql is None:
            meta = Message._meta
            quote = self.connection.ops.quote_name
            numbered = [placeholder.format(i) for i in range(1, len(columns) + 2)]
            assignments = ", ".join(
                f"{quote(meta.get_field(name).column)} = {mark}"
                for name, mark in zip(columns, numbered, strict=False)
            )
            sql = self._sql[key] = (
                f"UPDATE {quote(meta.db_table)} SET {assignments} "
                f"WHERE {quote(meta.pk.column)} = {numbered[-1]}"
            )
        return sql


def pipelined_pgconn(connection) -> Any:
    """The libpq connection under ``connection`` when outcomes can be pipelined on it: psycopg
    3, connected, in autocommit and idle (no transaction, no result waiting). Otherwise None."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    try:
        from psycopg import pq
    except ImportError:  # psycopg2: plain writes
        return None
    connection.ensure_connection()
    raw = connection.connection
    pgconn = getattr(raw, "pgconn", None)
    if (
        pgconn is None
        or not raw.autocommit
        or pgconn.transaction_status != pq.TransactionStatus.IDLE
    ):
        return None
    return pgconn


def as_text(value: Any) -> bytes | bool | None:
    """A parameter in PostgreSQL's text format; False for a type this module does not convert."""
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat().encode()
    if isinstance(value, TEXT_TYPES) and not isinstance(value, bool):
        return str(value).encode()
    return False
