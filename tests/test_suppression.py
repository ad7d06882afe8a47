"""send() to suppressed and opted-out addresses: a suppressed Message, no provider call, a clear
error the outbox treats as final; one lookup query per batch, none while nothing is blocked."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_communication import (
    CommunicationError,
    RecipientOptedOutError,
    RecipientSuppressedError,
    send,
    signals,
    streaming,
)
from django_communication.models import Message, OptOut, Suppression
from django_communication.optout import opt_in, opt_out
from django_communication.providers import memory
from django_communication.sending import SendRequest, send_many
from django_communication.suppression import suppress


def block_queries(queries) -> list[str]:
    tables = (Suppression._meta.db_table, OptOut._meta.db_table)
    return [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in tables)]


def test_send_to_a_suppressed_address_writes_suppressed_and_calls_no_provider(
    comm_config, customer
):
    suppress("email", "JOHN@example.com", "bounce")

    with pytest.raises(RecipientSuppressedError) as caught:
        send(to=customer, subject="Hi", body_text="Hello")

    error = caught.value
    assert isinstance(error, CommunicationError) and error.permanent
    assert not isinstance(error, RecipientOptedOutError)
    row = Message.objects.get()
    assert error.message.pk == row.pk
    assert (row.status, row.provider, row.provider_message_id) == ("suppressed", "", "")
    assert "suppression list" in row.error and "john@example.com" in row.error
    assert "suppression list" in str(error)
    assert memory.messages == []


def test_suppression_is_per_channel(comm_config, customer):
    suppress("email", "john@example.com", "complaint")
    message = send(to=customer, channel="sms", body_text="Hi")
    assert message.status == "sent"


def test_removing_the_suppression_sends_again(comm_config, customer):
    suppress("email", "john@example.com", "bounce")
    with pytest.raises(RecipientSuppressedError):
        send(to=customer, subject="Hi", body_text="Hello")
    Suppression.objects.all().delete()
    assert send(to=customer, subject="Hi", body_text="Hello").status == "sent"


def test_idempotent_repeat_of_a_suppressed_send_raises_again_without_a_new_row(
    comm_config, customer
):
    suppress("email", "john@example.com", "bounce")
    for _ in range(2):
        with pytest.raises(RecipientSuppressedError):
            send(to=customer, subject="Hi", body_text="Hello", idempotency_key="k1")
    assert Message.objects.count() == 1
    assert memory.messages == []


def test_a_failed_message_retried_after_its_address_was_suppressed(comm_config, customer):
    failed = Message.objects.create(
        channel="email", to_address="john@example.com", status="failed", idempotency_key="k2"
    )
    suppress("email", "john@example.com", "bounce")
    with pytest.raises(RecipientSuppressedError):
        send(to=customer, subject="Hi", body_text="Hello", idempotency_key="k2")
    failed.refresh_from_db()
    assert failed.status == "suppressed"
    assert memory.messages == []


def test_message_suppressed_signal(comm_config, customer):
    seen = []

    def receiver(sender, message, reason, **kwargs):
        seen.append((message.status, reason))

    signals.message_suppressed.connect(receiver)
    try:
        suppress("email", "john@example.com", "bounce")
        with pytest.raises(RecipientSuppressedError):
            send(to=customer, subject="Hi", body_text="Hello")
    finally:
        signals.message_suppressed.disconnect(receiver)
    [(status, reason)] = seen
    assert status == "suppressed" and "suppression list" in reason


def test_send_many_mixes_suppressed_opted_out_and_sent(comm_config, news):
    suppress("email", "gone@example.com", "bounce")
    opt_out("quiet@example.com", "email", "announcement")
    requests = [
        SendRequest(to="gone@example.com", template_key="news"),
        SendRequest(to="quiet@example.com", template_key="news"),
        SendRequest(to="quiet@example.com", subject="Receipt", body_text="Paid"),  # transactional
        SendRequest(to="fine@example.com", template_key="news"),
    ]
    results = send_many(requests)
    assert type(results[0]) is RecipientSuppressedError
    assert type(results[1]) is RecipientOptedOutError
    assert isinstance(results[1], RecipientSuppressedError)
    assert results[2].status == "sent" and results[3].status == "sent"
    assert [m.to_address for m in memory.messages] == ["quiet@example.com", "fine@example.com"]
    assert sorted(Message.objects.values_list("to_address", "status")) == [
        ("fine@example.com", "sent"),
        ("gone@example.com", "suppressed"),
        ("quiet@example.com", "sent"),
        ("quiet@example.com", "suppressed"),
    ]


def test_lookup_queries_are_two_per_chunk_whatever_its_size(comm_config):
    """send_many() composes its requests a chunk at a time (streaming.CHUNK): two lookups per
    chunk, not per message."""
    suppress("email", "gone@example.com", "bounce")
    opt_out("quiet@example.com", "email", "announcement")

    def lookups(n: int) -> int:
        requests = [
            SendRequest(to=f"user{i}@example.com", subject="S", body_text="B", message_type=t)
            for i in range(n)
            for t in ("announcement", "transactional")
        ]
        with CaptureQueriesContext(connection) as queries:
            send_many(requests)
        return len(block_queries(queries))

    lookups(1)  # the first also asks whether anything is blocked at all (cached from then on)
    assert lookups(1) == 2  # the suppression list, the opt-outs
    assert lookups(streaming.CHUNK // 2) == 2  # one chunk: two requests per recipient
    assert lookups(streaming.CHUNK) == 4  # two chunks


def test_no_lookup_while_nothing_is_suppressed_or_opted_out(comm_config, customer):
    send(to=customer, subject="Hi", body_text="warm the cache")
    with CaptureQueriesContext(connection) as queries:
        send(to=customer, subject="Hi", body_text="Hello")
        send_many([SendRequest(to=customer, subject="Hi", body_text="Hello")] * 3)
    assert block_queries(queries) == []


def test_a_new_suppression_in_this_process_is_seen_at_once(comm_config, customer):
    assert send(to=customer, subject="Hi", body_text="cached: nothing blocked").status == "sent"
    suppress("email", "john@example.com", "bounce")
    with pytest.raises(RecipientSuppressedError):
        send(to=customer, subject="Hi", body_text="Hello")


def test_staff_added_suppression_is_seen_at_once(comm_config, customer):
    send(to=customer, subject="Hi", body_text="cached: nothing blocked")
    Suppression.objects.create(channel="email", address="john@example.com", reason="manual")
    with pytest.raises(RecipientSuppressedError):
        send(to=customer, subject="Hi", body_text="Hello")


# --------------------------------------------------------------------------- opt-outs


def test_opted_out_send_is_recorded_and_not_sent(comm_config, customer, news):
    assert opt_out("John@Example.com", "email", "announcement") is True
    assert opt_out("john@example.com", "email", "announcement") is False  # already

    with pytest.raises(RecipientOptedOutError) as caught:
        send(to=customer, template_key="news")
    assert caught.value.permanent
    row = Message.objects.get()
    assert row.status == "suppressed" and row.error.startswith("Opted out")
    assert memory.messages == []


def test_opt_out_covers_one_type_on_one_channel(comm_config, customer, news):
    opt_out("john@example.com", "email", "announcement")
    assert send(to=customer, template_key="news", channel="sms").status == "sent"
    assert send(to=customer, template_key="news", message_type="reminder").status == "sent"
    assert send(to=customer, subject="Receipt", body_text="Paid").status == "sent"
    with pytest.raises(RecipientOptedOutError):
        send(to=customer, template_key="news")


def test_reminder_sms_opt_out(comm_config, customer):
    opt_out("+447911123456", "sms", "reminder")
    with pytest.raises(RecipientOptedOutError):
        send(to=customer, body_text="Tomorrow at 10", message_type="reminder")
    assert send(to=customer, body_text="Alert!", message_type="alert").status == "sent"


@pytest.mark.parametrize("message_type", ["transactional", "alert", "newsletter"])
def test_transactional_and_alert_cannot_be_opted_out_of(db, message_type):
    with pytest.raises(CommunicationError):
        opt_out("john@example.com", "email", message_type)
    assert not OptOut.objects.exists()


def test_opt_in_removes_the_opt_out(comm_config, customer, news):
    opt_out("john@example.com", "email", "announcement")
    assert opt_in("john@example.com", "email", "announcement") is True
    assert send(to=customer, template_key="news").status == "sent"


# --------------------------------------------------------------------------- the outbox


def test_the_outbox_treats_a_suppressed_send_as_final(comm_config, customer, news, settings):
    from outbox import emit
    from outbox.models import OutboxStatus
    from outbox.relay import drain

    settings.OUTBOX = {"RULES": {"news": {"template_key": "news"}}, "WAKE_ON_COMMIT": False}
    suppress("email", "john@example.com", "complaint")
    event = emit("news", to=customer)

    summary = drain()

    assert (summary.dispatched, summary.retried, summary.dead) == (0, 0, 1)
    event.refresh_from_db()
    assert event.status == OutboxStatus.DEAD and event.attempts == 1
    assert "suppression list" in event.last_error
    assert Message.objects.get().status == "suppressed"
    assert memory.messages == []
