"""Inserting a row under a unique key that a concurrent writer may take first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, models, router, transaction

M = TypeVar("M", bound=models.Model)


def insert_or_fetch(
    row: M, key: str, *, using: str | None = None, insert: Callable[[], None] | None = None
) -> M:
    """INSERT ``row`` in a savepoint (``insert()``, or ``save(force_insert=True)``); if the
    value of its unique field ``key`` is taken already, a concurrent writer won: return the
    row stored under that value instead. ``row`` itself is returned when it was inserted."""
    using = using or router.db_for_write(type(row), instance=row)
    try:
        with transaction.atomic(using=using):
            if insert is None:
                row.save(force_insert=True, using=using)
            else:
                insert()
    except IntegrityError:
        return type(row)._default_manager.using(using).get(**{key: getattr(row, key)})
    return row
