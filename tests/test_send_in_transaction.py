"""send() inside a transaction (issue 17): deferred to the commit by default, never sent on a
rollback; durable through the outbox when it is installed, through on_commit otherwise.

Transactional tests (``transaction=True``): the commits and rollbacks are real, so on_commit
callbacks run as in production. ``deferrer`` runs a test both ways: ``on_commit`` (the outbox's
registration undone) and ``outbox`` (the relay, ``drain()``, sends after the commit).
"""

from __future__ import annotations

import signal
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from django_communication import SendRequest, send, send_many
from django_communication.deferral import register_deferrer, registered_deferrer
from django_communication.exceptions import (
    ConfigurationError,
    InvalidArgumentError,
    SendInTransactionError,
)
from django_communication.models import Message, MessageStatus, SendRateSlot
from django_communication.pending import send_pending
from django_communication.providers import memory
from outbox.conf import DEFERRED_SEND
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.attachments import check_parts, files_for_booking, stored_files
from tests.providers import TEST_PROVIDERS, ScriptedProvider

pytestmark = pytest.mark.django_db(transaction=True)


class PaymentFailed(Exception):
    pass


def place_order(request):
    """A view: sends the confirmation, then fails when ``?fail=1`` (after the send)."""
    message = send(to="ada@example.com", subject="Order placed", body_text="Thanks")
    if request.GET.get("fail"):
        raise PaymentFailed("card declined")
    return HttpResponse(f"{message.status} {len(ScriptedProvider.calls)}")


urlpatterns = [path("order/", place_order)]


@pytest.fixture(autouse=True)
def _relay_runs_when_told(outbox):
    """conftest's OUTBOX: no wake-up at the commit, so the relay runs only when a test calls
    drain()."""


@pytest.fixture(params=["on_commit", "outbox"])
def deferrer(request, scripted):
    """Which deferrer sends after the commit; ``.after_commit()`` runs what must run then (the
    relay, for the outbox; nothing for on_commit, which sent during the commit)."""
    previous = registered_deferrer()
    if request.param == "on_commit":
        register_deferrer(None)
    yield Deferrer(request.param)
    register_deferrer(previous)


class Deferrer:
    def __init__(self, name: str) -> None:
        self.name = name

    def after_commit(self) -> None:
        if self.name == "outbox":
            drain()


@pytest.fixture
def atomic_requests(monkeypatch, settings):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    settings.ROOT_URLCONF = __name__


def test_a_view_that_fails_after_sending_sends_nothing_and_writes_nothing(
    atomic_requests, deferrer, scripted
):
    response = Client(raise_request_exception=False).get("/order/?fail=1")
    deferrer.after_commit()

    assert response.status_code == 500
    assert scripted.calls == []
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_view_that_succeeds_sends_once_after_the_commit(atomic_requests, deferrer, scripted):
    response = Client().get("/order/")
    deferrer.after_commit()
    deferrer.after_commit()  # a second relay run sends nothing more

    # The view saw its message waiting and no provider call; the call came after the commit.
    assert response.content == b"pending 0"
    assert len(scripted.calls) == 1
    assert [call.in_atomic_block for call in scripted.calls] == [False]
    message = Message.objects.get()
    assert message.status == MessageStatus.SENT
    assert message.provider == "scripted"


def test_a_rolled_back_savepoint_sends_nothing_and_the_outer_commit_sends_once(deferrer, scripted):
    with transaction.atomic():
        send(to="a@example.com", subject="A", body_text="kept")
        with pytest.raises(PaymentFailed), transaction.atomic():
            send(to="b@example.com", subject="B", body_text="rolled back")
            raise PaymentFailed
        with transaction.atomic():  # a savepoint that commits
            send(to="c@example.com", subject="C", body_text="kept too")
    deferrer.after_commit()
    deferrer.after_commit()

    assert sorted(call.to for call in scripted.calls) == [
        "a@example.com",
        "c@example.com",
    ]
    assert dict(Message.objects.values_list("to_address", "status")) == {
        "a@example.com": MessageStatus.SENT,
        "c@example.com": MessageStatus.SENT,
    }


def test_an_inner_block_that_committed_sends_nothing_when_the_outer_one_rolls_back(
    deferrer, scripted
):
    with pytest.raises(PaymentFailed), transaction.atomic():
        with transaction.atomic():
            send(to="a@example.com", subject="A", body_text="inner")
        raise PaymentFailed
    deferrer.after_commit()

    assert scripted.calls == []
    assert not Message.objects.exists()


def test_the_returned_message_waits_and_shows_the_outcome_after_the_commit(deferrer, scripted):
    with transaction.atomic():
        message = send(to="a@example.com", subject="A", body_text="a")
        assert message.status == MessageStatus.PENDING
        assert message.idempotency_key == f"deferred:{message.pk}"
        assert scripted.calls == []
    deferrer.after_commit()

    if deferrer.name == "on_commit":  # sent by this process: the instance is updated in place
        assert message.status == MessageStatus.SENT
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.sent_at is not None


def test_a_callers_idempotency_key_is_kept_and_a_repeat_sends_once(deferrer, scripted):
    with transaction.atomic():
        first = send(to="a@example.com", subject="A", body_text="a", idempotency_key="order-1")
        again = send(to="a@example.com", subject="A", body_text="a", idempotency_key="order-1")
    deferrer.after_commit()

    assert first.pk == again.pk
    assert [call.key for call in scripted.calls] == ["order-1"]


def test_send_many_in_a_transaction_follows_the_same_rule(deferrer, scripted):
    requests = [
        SendRequest(to="a@example.com", subject="A", body_text="a"),
        SendRequest(to="+15005550006", channel="sms", body_text="b"),
        SendRequest(to="not an address", subject="C", body_text="c"),
    ]
    with pytest.raises(PaymentFailed), transaction.atomic():
        send_many(requests)
        raise PaymentFailed
    deferrer.after_commit()
    assert scripted.calls == []
    assert not Message.objects.exists()

    with transaction.atomic():
        results = send_many(requests)
    deferrer.after_commit()

    assert [type(result).__name__ for result in results] == [
        "Message",
        "Message",
        "InvalidRecipientError",
    ]
    assert sorted(call.channel for call in scripted.calls) == ["email", "sms"]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


def test_fallback_and_rate_limits_wait_for_the_commit_too(deferrer, scripted, settings):
    settings.COMMUNICATION = {
        "PROVIDERS": TEST_PROVIDERS,
        "FALLBACK": {"email": ["memory"]},
        "RATE_LIMITS": {"scripted": 1000, "memory": 1000},
    }
    scripted.fail["email"] = ConnectionError("scripted is down")

    with pytest.raises(PaymentFailed), transaction.atomic():
        send(to="a@example.com", subject="A", body_text="a")
        raise PaymentFailed
    deferrer.after_commit()
    assert scripted.calls == [] and memory.messages == []
    assert not SendRateSlot.objects.exists()  # no send slot taken either

    with transaction.atomic():
        send(to="a@example.com", subject="A", body_text="a")
        assert scripted.calls == [] and memory.messages == []
    deferrer.after_commit()

    assert len(scripted.calls) == 1  # tried, failed over to memory
    assert len(memory.messages) == 1
    message = Message.objects.get()
    assert (message.status, message.provider) == (MessageStatus.SENT, "memory")


def test_a_deferred_message_goes_in_its_language_with_its_attachments(
    deferrer, comm_config, smtp_settings, make_template, media
):
    """Rendered and stored in the transaction, sent by key after the commit: the email that
    arrives is the French variant, dated in French, with every file."""
    comm_config.email_provider = "django"
    comm_config.save()
    html = '<p>Booked.</p><img src="cid:logo">'
    booking = make_template(
        "booking",
        email_subject="Your booking",
        email_body_text="See you on {{ day|date:'l j F' }}.",
    )
    booking.variants.create(
        language="fr",
        email_subject="Votre réservation",
        email_body_text="À bientôt le {{ day|date:'l j F' }}.",
        email_body_html=html,
    )
    with transaction.atomic():
        message = send(
            to="ada@example.com",
            template_key="booking",
            context={"day": date(2026, 12, 24)},
            language="fr",
            attachments=files_for_booking(),
        )
        assert message.status == MessageStatus.PENDING
        assert smtp_settings.messages == []
    # on_commit sent it during the commit; the outbox waits for the relay.
    assert len(smtp_settings.messages) == (1 if deferrer.name == "on_commit" else 0)
    deferrer.after_commit()

    [received] = smtp_settings.messages
    parsed = received.message
    assert parsed["Subject"] == "Votre réservation"
    assert parsed.get_body(("plain",)).get_content().strip() == "À bientôt le jeudi 24 décembre."
    check_parts(parsed)
    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.language) == (MessageStatus.SENT, "fr")
    assert sorted(item["name"] for item in row.attachments) == [
        "booking.ics",
        "invoice.pdf",
        "logo.png",
        "notes.txt",
    ]
    assert len(stored_files(media)) == 4


def test_a_rolled_back_deferred_send_leaves_its_file_to_prune_attachments(deferrer, media):
    kept = send(
        to="a@example.com", subject="A", body_text="a", attachments=[("kept.pdf", b"k", None)]
    )
    with pytest.raises(PaymentFailed), transaction.atomic():
        send(to="b@example.com", subject="B", body_text="b", attachments=[("lost.pdf", b"l", None)])
        raise PaymentFailed
    deferrer.after_commit()
    assert len(stored_files(media)) == 2  # stored before the INSERT, left by the rollback
    assert [call.to for call in ScriptedProvider.calls] == ["a@example.com"]

    call_command("prune_attachments", "--grace-hours", "0", stdout=StringIO())
    assert stored_files(media) == [kept.attachments[0]["sha256"]]


def test_now_sends_inside_the_transaction_and_a_rollback_loses_the_row(scripted):
    with pytest.raises(PaymentFailed), transaction.atomic():
        message = send(to="a@example.com", subject="A", body_text="a", in_transaction="now")
        assert message.status == MessageStatus.SENT
        raise PaymentFailed

    assert [call.in_atomic_block for call in scripted.calls] == [True]
    assert len(scripted.calls) == 1
    assert not Message.objects.exists()  # the risk "now" accepts


def test_the_setting_chooses_and_the_argument_overrides_it(scripted, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "IN_TRANSACTION": "now"}
    with transaction.atomic():
        now = send(to="a@example.com", subject="A", body_text="a")
        deferred = send(to="b@example.com", subject="B", body_text="b", in_transaction="defer")
        assert (now.status, deferred.status) == (MessageStatus.SENT, MessageStatus.PENDING)
        assert [call.to for call in scripted.calls] == ["a@example.com"]


def test_raise_refuses_a_send_in_a_transaction_before_writing_anything(scripted, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "IN_TRANSACTION": "raise"}
    with transaction.atomic():
        with pytest.raises(SendInTransactionError, match="in_transaction='defer'"):
            send(to="a@example.com", subject="A", body_text="a")
        assert not Message.objects.exists()
    assert scripted.calls == []

    assert send(to="a@example.com", subject="A", body_text="a").status == MessageStatus.SENT


def test_an_unknown_in_transaction_value_is_refused(scripted, settings):
    with pytest.raises(InvalidArgumentError, match="in_transaction='later'"):
        send(to="a@example.com", subject="A", body_text="a", in_transaction="later")
    settings.COMMUNICATION = {**settings.COMMUNICATION, "IN_TRANSACTION": True}
    with pytest.raises(ConfigurationError, match=r"COMMUNICATION\['IN_TRANSACTION'\] = True"):
        send(to="a@example.com", subject="A", body_text="a")
    assert not Message.objects.exists()
    assert scripted.calls == []


def test_outside_a_transaction_send_goes_at_once(scripted):
    message = send(to="a@example.com", subject="A", body_text="a")
    assert message.status == MessageStatus.SENT
    assert message.idempotency_key is None
    assert [call.in_atomic_block for call in scripted.calls] == [False]
    assert not OutboxEvent.objects.exists()


def test_the_relay_never_defers_even_inside_a_transaction(scripted, settings):
    """The relay sends at once whatever IN_TRANSACTION says: its claim has committed."""
    settings.COMMUNICATION = {**settings.COMMUNICATION, "IN_TRANSACTION": "raise"}
    with transaction.atomic():
        send(to="a@example.com", subject="A", body_text="a", in_transaction="defer")
    with transaction.atomic():
        summary = drain()

    assert summary.dispatched == 1
    assert len(scripted.calls) == 1
    assert OutboxEvent.objects.get().status == OutboxStatus.DISPATCHED


def test_with_the_outbox_a_deferred_send_is_one_event_written_in_the_transaction(scripted):
    with transaction.atomic():
        send_many([SendRequest(to=f"{n}@example.com", subject="A", body_text="a") for n in "ab"])
        event = OutboxEvent.objects.get()
        assert event.event_type == DEFERRED_SEND
        assert len(event.context["messages"]) == 2
    assert scripted.calls == []

    drain()
    assert len(scripted.calls) == 2
    event = OutboxEvent.objects.get()
    assert event.status == OutboxStatus.DISPATCHED
    assert sorted(event.messages().values_list("to_address", flat=True)) == [
        "a@example.com",
        "b@example.com",
    ]


def test_with_the_outbox_a_failed_deferred_send_is_retried_by_the_relay(scripted):
    scripted.fail["email"] = ConnectionError("down")
    with transaction.atomic():
        send(to="a@example.com", subject="A", body_text="a")
    drain()
    event = OutboxEvent.objects.get()
    assert (event.status, event.attempts) == (OutboxStatus.PENDING, 1)
    assert Message.objects.get().status == MessageStatus.FAILED

    scripted.fail.clear()
    OutboxEvent.objects.update(available_at=event.created_at)  # due again now
    drain()
    assert Message.objects.get().status == MessageStatus.SENT
    assert len(scripted.calls) == 2
    assert OutboxEvent.objects.get().status == OutboxStatus.DISPATCHED


COMMIT_THEN_DIE = """
import os, signal, sys, django
django.setup()
from django.db import transaction
from django_communication import send
from django_communication.deferral import register_deferrer
if sys.argv[1] == "on_commit":
    register_deferrer(None)
with transaction.atomic():
    # Runs first at the commit, before any callback the send registers.
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    send(to="ada@example.com", subject="Order placed", body_text="Thanks")
"""


def commit_then_die(processes, mode: str) -> None:
    """Run COMMIT_THEN_DIE in a subprocess on the test database; it must die by SIGKILL."""
    process = processes.start("-c", COMMIT_THEN_DIE, mode)
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, processes.output(process)


def test_with_the_outbox_a_process_killed_after_the_commit_loses_nothing(processes):
    commit_then_die(processes, "outbox")
    message = Message.objects.get()
    assert message.status == MessageStatus.PENDING
    assert OutboxEvent.objects.get().event_type == DEFERRED_SEND

    drain()
    drain()

    # Every provider call of every process: one, by this process's relay.
    assert processes.calls() == {message.idempotency_key: 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_without_the_outbox_a_crash_after_the_commit_leaves_a_pending_row_send_pending_sends(
    processes,
):
    commit_then_die(processes, "on_commit")
    message = Message.objects.get()
    assert message.status == MessageStatus.PENDING
    assert not OutboxEvent.objects.exists()

    assert send_pending() == []  # younger than ten minutes: may still be on its way
    out = StringIO()
    call_command("send_pending_messages", "--older-than", "0", stdout=out)
    assert send_pending(older_than=timedelta(0)) == []

    assert out.getvalue() == "pending messages found: 1; sent: 1; failed: 0\n"
    assert processes.calls() == {message.idempotency_key: 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_send_pending_leaves_rows_without_a_key_alone(scripted):
    scripted.fail["email"] = ConnectionError("down")
    Message.objects.create(channel="email", to_address="a@example.com", subject="A")
    assert send_pending(older_than=timedelta(0)) == []
    assert scripted.calls == []


def checks_ids(settings) -> list[str]:
    return [message.id for message in run_checks() if message.id.startswith("communication.")]


def test_check_warns_when_atomic_requests_meets_now(settings, monkeypatch):
    settings.COMMUNICATION = {"IN_TRANSACTION": "now"}
    assert "communication.W002" not in checks_ids(settings)
    monkeypatch.setitem(settings.DATABASES["default"], "ATOMIC_REQUESTS", True)
    assert "communication.W002" in checks_ids(settings)
    settings.COMMUNICATION = {"IN_TRANSACTION": "defer"}
    assert "communication.W002" not in checks_ids(settings)


def test_check_refuses_an_unknown_in_transaction(settings):
    settings.COMMUNICATION = {"IN_TRANSACTION": "later"}
    assert "communication.E016" in checks_ids(settings)


def test_outbox_check_refuses_rules_for_the_reserved_event_type(settings):
    settings.OUTBOX = {"RULES": {DEFERRED_SEND: {"template_key": "welcome"}}}
    errors = [message for message in run_checks() if message.id == "outbox.E002"]
    assert len(errors) == 1
    assert "reserves it for send() calls deferred" in errors[0].msg
