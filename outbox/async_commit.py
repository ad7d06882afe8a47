"""OUTBOX["ASYNC_COMMIT"]: the relay's own commits do not wait for the disk."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import Error, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from django_communication.models import Message

from .conf import outbox_settings
from .models import OutboxEvent


@contextmanager
def relaxed_commits() -> Iterator[None]:
    """With OUTBOX["ASYNC_COMMIT"], the relay's own commits do not wait for the disk:
    PostgreSQL's ``synchronous_commit = off``, SQLite's ``synchronous = NORMAL`` (WAL mode
    only). A relay that dies loses nothing it committed; only a crash of the database server
    (or of the machine, for SQLite) can forget the last moments of outcomes, whose messages
    are then sent again. The connection's own setting is restored afterwards."""
    restores: list[tuple[BaseDatabaseWrapper, str]] = []
    if outbox_settings.async_commit:
        for alias in {router.db_for_write(OutboxEvent), router.db_for_write(Message)}:
            connection = connections[alias]
            relax = RELAXERS.get(connection.vendor)
            if relax is None or connection.in_atomic_block:
                continue
            with connection.cursor() as cursor:
                restore = relax(cursor)
            if restore:
                restores.append((connection, restore))
    try:
        yield
    finally:
        for connection, restore in restores:
            with suppress(Error), connection.cursor() as cursor:
                cursor.execute(restore)


def relax_postgresql(cursor) -> str:
    cursor.execute("SET synchronous_commit TO OFF")
    return "RESET synchronous_commit"


def relax_sqlite(cursor) -> str | None:
    cursor.execute("PRAGMA journal_mode")
    journal_mode = str(cursor.fetchone()[0]).lower()
    cursor.execute("PRAGMA synchronous")
    level = int(cursor.fetchone()[0])
    if journal_mode != "wal" or level <= SQLITE_NORMAL:
        return None
    cursor.execute(f"PRAGMA synchronous = {SQLITE_NORMAL}")
    return f"PRAGMA synchronous = {level}"


SQLITE_NORMAL = 1
RELAXERS = {"postgresql": relax_postgresql, "sqlite": relax_sqlite}
