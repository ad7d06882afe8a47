"""On PostgreSQL, an index that serves ``OutboxEvent.messages()``: the messages whose idempotency
key starts with ``outbox:<event id>:``.

The unique index on ``Message.idempotency_key`` serves equality only: under any collation but
"C", PostgreSQL cannot use it for ``LIKE 'prefix%'``, and the event page scanned the message
table. This partial ``varchar_pattern_ops`` index holds outbox keys only, so a message sent
without the outbox pays nothing for it. Outbox owns the prefix, so outbox creates the index;
it is not in any model's Meta (Django has no per-backend index), so makemigrations ignores it.
Built CONCURRENTLY: writes to a large message table go on while it builds.
"""

from django.db import migrations

NAME = "outbox_message_key_prefix_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("django_communication", "Message")._meta.db_table)
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON {table} "
        "(idempotency_key varchar_pattern_ops) WHERE idempotency_key::text LIKE 'outbox:%'",
        None,  # no parameters: the % is a LIKE wildcard, not a placeholder
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}", None)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("outbox", "0007_context_keeps_types"),
        ("django_communication", "0006_lean_generic_references"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
