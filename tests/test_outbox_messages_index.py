"""OutboxEvent.messages() is an index lookup on PostgreSQL, not a scan of the message table."""

from __future__ import annotations

import pytest
from django.db import connection

from django_communication.models import Message
from outbox.models import OutboxEvent


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres  # the plan asserted is PostgreSQL's
@pytest.mark.django_db(transaction=True)
def test_messages_of_an_event_are_found_through_an_index(db):
    events = OutboxEvent.objects.bulk_create(
        [OutboxEvent(event_type="booking.confirmed") for _ in range(200)]
    )
    Message.objects.bulk_create(
        [
            Message(
                channel="email",
                status="sent",
                to_address=f"customer{n}@example.com",
                idempotency_key=f"{event.message_key_prefix}booking_confirmation:{channel}",
            )
            for n, event in enumerate(events)
            for channel in ("email", "sms")
        ]
        + [  # direct sends with keys of their own, and without
            Message(channel="email", status="sent", to_address="x@example.com", idempotency_key=k)
            for k in [f"welcome:{n}" for n in range(2000)] + [None] * 2000
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Message._meta.db_table}")
    event = events[100]
    found = plan(event.messages())
    # With statistics for 4,400 rows, the planner picks the index for two matching rows...
    assert "outbox_message_key_prefix_idx" in found, found
    assert "Seq Scan" not in found, found
    # ...and it is an index the query can use at all: even a planner told to avoid sequential
    # scans cannot use the unique index for a prefix (it would fall back to a Seq Scan).
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_bitmapscan = off")
        try:
            forced = plan(event.messages())
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_bitmapscan")
    assert "Index" in forced and "outbox_message_key_prefix_idx" in forced, forced
    assert sorted(m.idempotency_key for m in event.messages()) == [
        f"{event.message_key_prefix}booking_confirmation:email",
        f"{event.message_key_prefix}booking_confirmation:sms",
    ]


def test_messages_of_an_event_on_any_database(db):
    first, second = (OutboxEvent.objects.create(event_type="x") for _ in range(2))
    for event in (first, second):
        Message.objects.create(
            channel="email",
            to_address="a@example.com",
            idempotency_key=f"{event.message_key_prefix}r",
        )
    # A key that merely contains the prefix is not the event's.
    Message.objects.create(
        channel="email", to_address="a@example.com", idempotency_key=f"x{first.message_key_prefix}"
    )
    assert [m.idempotency_key for m in first.messages()] == [f"{first.message_key_prefix}r"]
