"""The relay through faults, in one process: a lost database connection mid-batch (outcomes kept
in memory and written after the reconnect, the batch released), a stop request between two parts
of a batch (the rest released at once), the heartbeat, the partial fan-out's report.

The same faults against real processes, PostgreSQL and an SMTP server: test_outbox_process_faults.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from django_communication import streaming
from django_communication.models import Message, MessageStatus
from django_communication.providers import memory
from django_communication.recorder import Recorder
from outbox import emit, lease, reconnect, relay
from outbox.claim import claim
from outbox.models import OutboxEvent, OutboxStatus
from outbox.stopping import Stop

RULES = {
    "fault.one": {"template_key": "fault", "channel": "email"},
    "fault.two": [
        {"template_key": "fault", "channel": "email"},
        {"template_key": "fault_sms_only", "channel": "sms"},
    ],
    "fault.both": [
        {"template_key": "fault", "channel": "email"},
        {"template_key": "fault_both", "channel": "sms"},
    ],
}


@pytest.fixture
def fault_outbox(settings, comm_config, make_template):
    settings.OUTBOX = {"RULES": RULES, "WAKE_ON_COMMIT": False}
    make_template("fault", email_subject="S {{ n }}", email_body_text="B {{ n }}")
    # No SMS body: the SMS half of fault.two fails for good (a partial fan-out).
    make_template("fault_sms_only", email_subject="S", email_body_text="B")
    Recorder.unwritten.clear()
    reconnect.interrupted.clear()
    yield settings.OUTBOX
    Recorder.unwritten.clear()
    reconnect.interrupted.clear()


def sent_keys() -> list[str]:
    return sorted(m.idempotency_key for m in memory.messages)


@pytest.mark.parametrize("concurrency", [1, 8])
def test_an_outcome_lost_with_the_connection_is_written_after_the_reconnect_not_resent(
    fault_outbox, customer, monkeypatch, concurrency
):
    """One lane (one outcome written at a time) and 8 lanes (where the third call is still in
    its lane when the write fails: its outcome, answered afterwards, is kept too)."""
    fault_outbox["CONCURRENCY"] = concurrency
    events = [emit("fault.one", to=customer, context={"n": n}) for n in range(3)]
    real_params, real_send = Recorder.params, memory.MemoryProvider.send
    calls, sends, lost = [], [], threading.Event()

    def lose_the_connection_at_the_second_outcome(self, message, fields):
        calls.append(message.pk)
        if len(calls) == 2:  # the second message was sent; the database is gone
            lost.set()
            raise OperationalError("server closed the connection unexpectedly")
        return real_params(self, message, fields)

    def third_call_answers_after_the_loss(self, message):
        sends.append(message.pk)
        if len(sends) == 3:
            assert lost.wait(10)
        return real_send(self, message)

    monkeypatch.setattr(Recorder, "params", lose_the_connection_at_the_second_outcome)
    monkeypatch.setattr(memory.MemoryProvider, "send", third_call_answers_after_the_loss)
    # The connection is not really broken here (the test's transaction lives on it): closing it
    # is the process tests' part (test_outbox_process_faults).
    closed = []
    monkeypatch.setattr(reconnect, "close_connections", lambda: closed.append(True))
    waits = []
    stop = Stop()
    monkeypatch.setattr(stop, "wait", lambda seconds: waits.append(seconds) or False)

    summary = reconnect.resilient(relay.drain, stop)

    # One reconnect, then the batch again: the message whose outcome was lost is not sent again.
    assert len(waits) == len(closed) == 1 and 0 < waits[0] <= reconnect.FIRST_SECONDS
    assert summary is not None and summary.dispatched == 3
    assert len(sent_keys()) == 3 == len(set(sent_keys()))
    assert Recorder.unwritten == {} and reconnect.interrupted == set()
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}
    for event in OutboxEvent.objects.filter(pk__in=[e.pk for e in events]):
        assert event.status == OutboxStatus.DISPATCHED
        assert event.attempts == 1  # the interrupted claim was given back, not counted


def test_a_configuration_error_is_not_retried(fault_outbox, customer, monkeypatch):
    """Only a lost connection is survived: a database error that reconnecting cannot fix (a
    missing table: migrations not run) ends the relay with its message."""
    from django.db import ProgrammingError

    emit("fault.one", to=customer, context={"n": 1})

    def missing_table(*args, **kwargs):
        raise ProgrammingError('relation "outbox_outboxevent" does not exist')

    monkeypatch.setattr(relay, "claim", missing_table)
    with pytest.raises(ProgrammingError, match="does not exist"):
        reconnect.resilient(relay.drain, Stop())


def stop_after_first_send(stop: Stop, monkeypatch, action=None) -> None:
    """Request ``stop`` (or run ``action``) as the first message is sent, while its chunk is
    being delivered."""
    real_send = memory.MemoryProvider.send

    def send_then_stop(self, message):
        answer = real_send(self, message)
        if len(memory.messages) == 1:
            (action or (lambda: setattr(stop, "signalled", True)))()
        return answer

    monkeypatch.setattr(memory.MemoryProvider, "send", send_then_stop)


def test_a_stop_between_chunks_releases_the_events_not_started(fault_outbox, customer, monkeypatch):
    events = [emit("fault.one", to=customer, context={"n": n}) for n in range(5)]
    monkeypatch.setattr(streaming, "CHUNK", 2)
    fault_outbox["CONCURRENCY"] = 1
    stop = Stop()
    stop_after_first_send(stop, monkeypatch)  # SIGTERM while the first chunk is being sent
    before = timezone.now()

    summary = relay.drain(stop=stop)

    assert (summary.dispatched, summary.released, summary.processed) == (2, 3, 2)
    assert "released 3" in str(summary)
    assert len(memory.messages) == 2  # the chunk under way was finished
    assert Message.objects.count() == 2  # nothing composed after the stop
    rows = {e.pk: e for e in OutboxEvent.objects.all()}
    released = [rows[e.pk] for e in events[2:]]
    for row in released:
        # Due at once for another relay, no lease to wait for, the attempt not counted.
        assert (row.status, row.claim_token, row.attempts) == (OutboxStatus.PENDING, None, 0)
        assert row.available_at <= timezone.now() and row.available_at >= before
    assert relay.drain().dispatched == 3
    assert len(sent_keys()) == 5 == len(set(sent_keys()))


def test_an_event_stopped_halfway_is_released_and_its_sent_message_not_sent_again(
    fault_outbox, customer, monkeypatch, make_template
):
    make_template("fault_both", email_subject="S", email_body_text="B", sms_body="SMS {{ n }}")
    event = emit("fault.both", to=customer, context={"n": 1})
    monkeypatch.setattr(streaming, "CHUNK", 1)
    fault_outbox["CONCURRENCY"] = 1
    stop = Stop()
    stop_after_first_send(stop, monkeypatch)  # after the email, before the SMS is composed

    summary = relay.drain(stop=stop)

    assert (summary.dispatched, summary.released) == (0, 1)
    assert [m.channel for m in memory.messages] == ["email"]
    row = OutboxEvent.objects.get(pk=event.pk)
    assert (row.status, row.claim_token, row.attempts) == (OutboxStatus.PENDING, None, 0)

    assert relay.drain().dispatched == 1
    assert sorted(m.channel for m in memory.messages) == ["email", "sms"]  # the email once
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 2


def test_renew_and_release_touch_only_the_batch_still_held(fault_outbox, customer):
    mine = [emit("fault.one", to=customer, context={"n": n}) for n in range(2)]
    token, _ = claim(2)
    other = emit("fault.one", to=customer, context={"n": 9})
    other_token, _ = claim(5)
    OutboxEvent.objects.filter(pk=mine[1].pk).update(claim_token=None)  # finalized meanwhile
    later = timezone.now() + timedelta(seconds=outbox_settings_lease())

    assert lease.renew(token) == 1
    renewed = OutboxEvent.objects.get(pk=mine[0].pk)
    assert renewed.available_at >= later - timedelta(seconds=1)
    assert lease.release(token) == 1
    assert OutboxEvent.objects.get(pk=mine[0].pk).claim_token is None
    assert OutboxEvent.objects.get(pk=other.pk).claim_token == other_token
    assert lease.release(uuid.uuid4()) == 0


def outbox_settings_lease() -> float:
    from outbox.conf import outbox_settings

    return outbox_settings.lease_seconds


def test_the_heartbeat_renews_while_the_block_runs_and_stops_after(monkeypatch):
    token = uuid.uuid4()
    beats: list[uuid.UUID] = []
    second_beat = threading.Event()

    def renew(renewed):
        beats.append(renewed)
        if len(beats) >= 2:
            second_beat.set()

    monkeypatch.setattr(lease, "renew", renew)
    monkeypatch.setattr(lease, "heartbeat_interval", lambda: 0.01)
    with lease.heartbeat(token):
        assert second_beat.wait(30), "the heartbeat never renewed the lease"
    after = len(beats)
    assert set(beats) == {token}
    # The thread has ended (joined on exit): no renewal after the block.
    assert not any(t.name == "outbox-heartbeat" for t in threading.enumerate())
    assert len(beats) == after


def test_a_partial_fan_out_is_reported(fault_outbox, customer, caplog):
    event = emit("fault.two", to=customer, context={"n": 1})
    caplog.set_level("INFO", logger="outbox")

    summary = relay.drain()

    assert summary.dead == 1 and summary.partly_sent == 1
    assert str(summary) == (
        "events dispatched 0, retried 0, dead 1 (1 of them partly sent); messages sent 1"
    )
    row = OutboxEvent.objects.get(pk=event.pk)
    assert row.last_error.startswith("1 of 2 messages sent; ")  # what the admin shows
    [record] = [r for r in caplog.records if getattr(r, "outcome", "") == "dead"]
    assert record.sent == "1/2"


def test_the_django_q2_task_stops_claiming_before_its_cluster_timeout(
    fault_outbox, customer, monkeypatch
):
    from django_q.conf import Conf

    from outbox import stopping, tasks

    assert Conf.TIMEOUT == 30  # tests.settings' Q_CLUSTER
    clock = [1000.0]
    monkeypatch.setattr(stopping.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tasks.time, "monotonic", lambda: clock[0])
    assert tasks.task_deadline() == 1000.0 + tasks.TIMEOUT_SHARE * 30

    for n in range(3):
        emit("fault.one", to=customer, context={"n": n})
    monkeypatch.setattr(streaming, "CHUNK", 1)
    fault_outbox["CONCURRENCY"] = 1

    def past_the_budget():
        clock[0] += 30  # the first message took the task's whole budget

    stop_after_first_send(Stop(), monkeypatch, past_the_budget)

    assert tasks.drain() == "events dispatched 1, retried 0, dead 0, released 2; messages sent 1"
    assert OutboxEvent.objects.filter(claim_token__isnull=False).count() == 0
    assert len(memory.messages) == 1


def test_drain_outbox_loop_reports_a_configuration_error_clearly(
    fault_outbox, customer, monkeypatch
):
    from django.core.management import CommandError, call_command
    from django.db import ProgrammingError

    def missing_table(*args, **kwargs):
        raise ProgrammingError('relation "outbox_outboxevent" does not exist')

    monkeypatch.setattr(relay, "claim", missing_table)
    with pytest.raises(CommandError, match=r"does not exist.*run `manage.py migrate`"):
        call_command("drain_outbox", "--loop")
