"""INSERT without the ORM's query compilation: the statement is built once per model and
database, then run for the rows with executemany(). On the hot paths (emit(), the pending rows
of a send) compiling the INSERT cost more than running it.

Only for models whose primary key is set before the INSERT (a UUID default): no ids are read
back. No pre_save/post_save signals, as with bulk_create().
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, models

_sql: dict[tuple[type[models.Model], str], str] = {}


def insert_rows(rows: Sequence[models.Model], using: str) -> None:
    """INSERT ``rows`` (all of one model) on the connection ``using``, as
    ``bulk_create(rows)`` would, and mark them saved there."""
    if not rows:
        return
    model = type(rows[0])
    meta = model._meta
    connection = connections[using]
    fields = meta.concrete_fields
    sql = _sql.get((model, using))
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        sql = _sql[(model, using)] = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(fields))})"
        )
    params = []
    for row in rows:
        if row.pk is None:
            row.pk = meta.pk.get_pk_value_on_save(row)
        params.append(
            [field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields]
        )
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
    for row in rows:
        row._state.adding, row._state.db = False, using
