"""Delivery lanes: send_many() and the relay keep up to N provider calls in flight."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from django_communication import SendRequest, send_many, streaming
from django_communication.exceptions import InvalidArgumentError, ProviderError
from django_communication.lanes import Lanes
from django_communication.models import Message, MessageStatus, SendRateSlot
from django_communication.recorder import Recorder
from django_communication.signals import message_sent
from outbox import emit_many, tasks
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.providers import TEST_PROVIDERS, LaneProvider, ScriptedProvider
from tests.rates import max_in_one_second


@pytest.fixture
def lanes(comm_config, settings):
    """Both channels through LaneProvider."""
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    comm_config.email_provider = comm_config.sms_provider = "lanes"
    comm_config.save()
    LaneProvider.reset()
    yield LaneProvider
    LaneProvider.reset()


def requests(count: int) -> list[SendRequest]:
    return [
        SendRequest(to=f"user{n}@example.com", subject=f"Hi {n}", body_text="Hello")
        for n in range(count)
    ]


def test_send_many_keeps_its_concurrency_in_flight(lanes):
    lanes.reset(meet=4)  # each call waits for three others: one at a time would fail
    results = send_many(requests(8), concurrency=4)
    assert [m.status for m in results] == [MessageStatus.SENT] * 8
    assert [m.to_address for m in results] == [f"user{n}@example.com" for n in range(8)]
    assert lanes.most_in_flight == 4
    # One session per lane, each in its lane's thread, none in the calling thread.
    assert len(lanes.sessions) == 4 and len(set(lanes.sessions)) == 4
    assert {thread for _, thread in lanes.calls} <= set(lanes.sessions)
    assert threading.current_thread().name not in lanes.sessions
    rows = Message.objects.filter(status=MessageStatus.SENT, provider="lanes")
    assert sorted(rows.values_list("provider_message_id", flat=True)) == sorted(
        f"lane-{m.pk}" for m in results
    )


def test_never_more_unrecorded_messages_than_twice_the_lanes(lanes):
    """The duplicate window: when a call starts, at most 2N messages were handed to the
    provider without their outcome written (message_sent fires after the write): N in flight,
    N answered and waiting for the write under way."""
    started, recorded, seen = [], [], []

    def on_send(message):
        with lanes.lock:
            started.append(message.pk)
            seen.append(len(started) - len(recorded))

    def on_sent(sender, message, **kwargs):
        assert Message.objects.get(pk=message.pk).status == MessageStatus.SENT
        recorded.append(message.pk)

    lanes.reset(meet=3)
    lanes.on_send = on_send
    message_sent.connect(on_sent)
    try:
        results = send_many(requests(12), concurrency=3)
    finally:
        message_sent.disconnect(on_sent)
    assert all(m.status == MessageStatus.SENT for m in results)
    assert len(recorded) == 12
    assert 3 <= max(seen) <= 6


def test_the_next_chunk_is_composed_while_the_lanes_send(lanes, monkeypatch):
    """The first call waits until the second chunk has been composed: composing everything
    before sending, or a chunk only after the one before was answered, never lets it go."""
    monkeypatch.setattr(streaming, "CHUNK", 2)
    real_compose, composed = streaming.compose, []
    second_composed = threading.Event()

    def compose(chunk, *args, **kwargs):
        batch = real_compose(chunk, *args, **kwargs)
        composed.append(len(chunk))
        if len(composed) == 2:
            second_composed.set()
        return batch

    waited = []

    def on_send(message):
        if message.to_address == "user0@example.com":
            waited.append(second_composed.wait(10))

    monkeypatch.setattr(streaming, "compose", compose)
    lanes.on_send = on_send
    results = send_many(requests(6), concurrency=2)
    assert waited == [True]
    assert composed == [2, 2, 2]
    assert [m.status for m in results] == [MessageStatus.SENT] * 6


def test_lanes_keep_their_sessions_across_chunks(lanes, settings, monkeypatch):
    """One session per lane for the whole send, not per chunk (with a fallback chain too: the
    chain is built once per channel)."""
    settings.COMMUNICATION = {**settings.COMMUNICATION, "FALLBACK": {"email": ["memory"]}}
    monkeypatch.setattr(streaming, "CHUNK", 2)
    results = send_many(requests(10), concurrency=2)
    assert [m.status for m in results] == [MessageStatus.SENT] * 10
    # A lane opens its session with its first message (a lane may get none): no lane twice.
    assert 1 <= len(lanes.sessions) == len(set(lanes.sessions)) <= 2


def test_a_stopped_send_many_leaves_the_requests_not_started(lanes, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK", 2)
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 1  # the first chunk starts, then stop

    results = send_many(requests(6), concurrency=2, stop=stop)
    assert [m.status for m in results[:2]] == [MessageStatus.SENT] * 2
    assert results[2:] == [None] * 4
    assert sorted(Message.objects.values_list("to_address", flat=True)) == [
        "user0@example.com",
        "user1@example.com",
    ]
    assert len(lanes.calls) == 2


def test_a_key_repeated_in_a_later_chunk_is_sent_once(lanes, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK", 2)
    batch = requests(5)
    for n, request in enumerate(batch):
        request.idempotency_key = f"key-{n}"
    batch[3] = SendRequest(
        to="other@example.com", subject="x", body_text="y", idempotency_key="key-0"
    )
    results = send_many(batch, concurrency=2)
    assert results[3] is results[0]
    assert [address for address, _ in lanes.calls].count("user0@example.com") == 1
    assert len(lanes.calls) == 4 == Message.objects.count()


def test_answers_taken_when_the_connection_is_lost_are_kept(lanes, monkeypatch):
    """The connection is lost between taking the lanes' answers and writing them (the slot
    reservation queries it): those answers, and the calls finished after, are kept for
    Recorder.write_unwritten(), not lost (their messages would be sent again)."""
    real_feed = Lanes.feed

    def feed(self):
        if self.taken:
            raise OperationalError("the connection was lost")
        return real_feed(self)

    monkeypatch.setattr(Lanes, "feed", feed)
    Recorder.unwritten.clear()
    try:
        with pytest.raises(OperationalError):
            send_many(requests(6), concurrency=3)
        accepted = {address for address, _ in lanes.calls}
        kept = {message.to_address for message, _ in Recorder.unwritten.values()}
        written = Message.objects.filter(status=MessageStatus.SENT)
        assert kept and accepted == kept | set(written.values_list("to_address", flat=True))
    finally:
        Recorder.unwritten.clear()


def test_a_bug_composing_a_later_chunk_leaves_the_calls_made_recorded(lanes, monkeypatch):
    """A recipient whose lookup raises something other than a CommunicationError (a bug) in the
    third chunk: the calls already made are written ``sent`` before the error goes on, so the
    retry the relay then makes (each request again) sends none of them twice."""
    monkeypatch.setattr(streaming, "CHUNK", 2)
    called = threading.Event()

    class Buggy:
        @property
        def email(self):
            assert called.wait(10), "no provider call was made"
            raise RuntimeError("a bug in the recipient")

    lanes.on_send = lambda message: called.set()
    batch = [*requests(4), SendRequest(to=Buggy(), subject="S", body_text="B")]
    for n, request in enumerate(batch):
        request.idempotency_key = f"key-{n}"

    with pytest.raises(RuntimeError, match="a bug in the recipient"):
        send_many(batch, concurrency=2)

    called_for = [address for address, _ in lanes.calls]
    sent = Message.objects.filter(status=MessageStatus.SENT).values_list("to_address", flat=True)
    assert called_for and sorted(sent) == sorted(called_for)
    retried = send_many(batch[:4], concurrency=2)
    assert [m.status for m in retried] == [MessageStatus.SENT] * 4
    assert sorted(address for address, _ in lanes.calls) == [
        f"user{n}@example.com" for n in range(4)
    ]


def test_failures_in_lanes_are_recorded_in_order(lanes):
    lanes.reset(fail=frozenset({"user1@example.com", "user4@example.com"}))
    results = send_many(requests(6), concurrency=3)
    assert [type(r).__name__ for r in results] == [
        "Message",
        "ProviderError",
        "Message",
        "Message",
        "ProviderError",
        "Message",
    ]
    failed = results[1]
    assert isinstance(failed, ProviderError) and failed.message.status == MessageStatus.FAILED
    statuses = dict(Message.objects.values_list("to_address", "status"))
    assert statuses["user1@example.com"] == statuses["user4@example.com"] == MessageStatus.FAILED
    assert list(statuses.values()).count(MessageStatus.SENT) == 4
    assert Message.objects.get(to_address="user4@example.com").error == "refused"


def test_concurrency_one_sends_in_the_calling_thread(lanes):
    send_many(requests(3), concurrency=1)
    assert {thread for _, thread in lanes.calls} == {threading.current_thread().name}
    assert lanes.most_in_flight == 1


def test_a_provider_that_is_not_thread_safe_gets_one_lane(comm_config, settings):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    comm_config.email_provider = "scripted"  # thread_safe = False
    comm_config.save()
    ScriptedProvider.reset(record_status=True)
    results = send_many(requests(4), concurrency=16)
    assert all(m.status == MessageStatus.SENT for m in results)
    # Each call read its row on the calling thread's connection (TestCase: uncommitted rows
    # are seen only there), in order: one at a time.
    calls = ScriptedProvider.calls
    assert [call.to for call in calls] == [m.to_address for m in results]
    assert [call.status for call in calls] == [MessageStatus.PENDING] * 4


@pytest.mark.parametrize("concurrency", [0, 65, -1])
def test_concurrency_out_of_range_is_refused(lanes, concurrency):
    with pytest.raises(InvalidArgumentError, match="concurrency must be between 1 and 64"):
        send_many(requests(2), concurrency=concurrency)
    assert not Message.objects.exists()


def test_rate_limit_holds_across_lanes(lanes, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "RATE_LIMITS": {"lanes": 20}}
    results = send_many(requests(45), concurrency=8)
    assert all(m.status == MessageStatus.SENT for m in results)
    assert max_in_one_second([m.sent_at.timestamp() for m in results]) <= 20


def test_slots_are_reserved_in_blocks_at_high_rates(lanes, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "RATE_LIMITS": {"lanes": 1000}}
    send_many(requests(2), concurrency=4)  # warm-up: the settings, the slot row
    with CaptureQueriesContext(connection) as queries:
        results = send_many(requests(200), concurrency=8)
    assert all(m.status == MessageStatus.SENT for m in results)
    table = SendRateSlot._meta.db_table
    reservations = [q for q in queries.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]
    # 200 slots 1.1 ms apart, a quarter of a second per block: one round trip per ~227 messages
    # (more only where a loaded machine skipped slots).
    assert 1 <= len(reservations) <= 20


# ----------------------------------------------------------------------------------- relay


RULES = {"lane.ping": {"template_key": "ping", "channel": "email"}}


@pytest.fixture
def lane_outbox(lanes, settings, make_template):
    make_template("ping", email_subject="Ping {{ n }}", email_body_text="Ping {{ n }}")
    settings.OUTBOX = {"RULES": RULES, "WAKE_ON_COMMIT": False, "CONCURRENCY": 4}
    return lanes


def emit_pings(customer, count: int) -> None:
    emit_many(
        [{"event_type": "lane.ping", "to": customer, "context": {"n": n}} for n in range(count)]
    )


def test_the_relay_uses_outbox_concurrency(lane_outbox, customer):
    emit_pings(customer, 8)
    lane_outbox.reset(meet=4)
    assert tasks.drain() == "events dispatched 8, retried 0, dead 0; messages sent 8"  # django-q2
    assert lane_outbox.most_in_flight == 4
    assert OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count() == 8


def test_drain_outbox_concurrency_option(lane_outbox, customer):
    emit_pings(customer, 6)
    lane_outbox.reset(meet=2)
    call_command("drain_outbox", "--concurrency", "2")
    assert lane_outbox.most_in_flight == 2
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 6
    with pytest.raises(CommandError, match="--concurrency must be from 1 to 64"):
        call_command("drain_outbox", "--concurrency", "0")


def test_drain_concurrency_argument_wins(lane_outbox, customer):
    emit_pings(customer, 3)
    summary = drain(concurrency=1)
    assert summary.dispatched == 3 and lane_outbox.most_in_flight == 1
