"""Shared send-rate limits (COMMUNICATION["RATE_LIMITS"]): slots reserved in the database."""

from __future__ import annotations

import bisect
import itertools
import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_communication import send
from django_communication.models import Message, MessageStatus, SendRateSlot
from django_communication.ratelimit import GUARD, pacer, reserve
from django_communication.sending import SendRequest, send_many
from outbox import emit_many
from outbox.models import OutboxEvent, OutboxStatus
from tests.outbox_providers import read_log


def max_in_one_second(times: list[float]) -> int:
    """The most timestamps in any window [t, t + 1): the busiest window starts at a timestamp."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


def test_no_limit_no_pacer_no_query(comm_config, customer):
    assert pacer("memory") is None
    send(to=customer, subject="warm", body_text="up")  # settings and templates cached
    with CaptureQueriesContext(connection) as queries:
        send(to=customer, subject="Hi", body_text="Hello")
    assert not any("sendrateslot" in q["sql"].lower() for q in queries.captured_queries)
    assert not SendRateSlot.objects.exists()


def test_reserve_hands_out_evenly_spaced_slots(db):
    interval = 0.2
    started = time.monotonic()
    waits = [reserve("p", interval) for _ in range(4)]
    elapsed = time.monotonic() - started
    # The first slot is now; each next one is interval later (minus the time the calls took).
    assert waits[0] <= 0
    for n, wait in enumerate(waits[1:], 1):
        assert n * interval - elapsed - 0.01 <= wait <= n * interval + 0.01
    assert SendRateSlot.objects.get(provider="p").next_at > time.time()
    # An idle bucket does not save up a burst: the next slot is "now", not in the past.
    time.sleep(1.0)
    assert -0.05 < reserve("p", interval) <= 0
    assert 0.15 < reserve("p", interval) <= 0.2 + 0.01


def test_send_many_waits_for_slots_and_fails_nothing(comm_config, settings):
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 10}}
    started = time.monotonic()
    results = send_many(
        [SendRequest(to=f"u{n}@example.com", subject="Hi", body_text="Hello") for n in range(6)]
    )
    elapsed = time.monotonic() - started
    assert all(m.status == MessageStatus.SENT for m in results)
    assert elapsed >= 5 * (1 + GUARD) / 10 - 0.01
    sent = sorted(m.sent_at.timestamp() for m in results)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    # The limit itself (slots are GUARD wider), less scheduling noise on a loaded machine.
    assert min(gaps) >= 1 / 10 - 0.02
    # Another provider is not limited by this one's slots.
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 10, "console": 1}}
    assert pacer("console") is not None and pacer("django") is None


def test_throttled_message_is_not_failed(comm_config, settings, customer):
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 2}}
    first = send(to=customer, subject="1", body_text="x")
    second = send(to=customer, subject="2", body_text="x")
    assert (first.status, second.status) == (MessageStatus.SENT, MessageStatus.SENT)
    assert (second.sent_at - first.sent_at).total_seconds() >= (1 + GUARD) / 2 - 0.01
    assert Message.objects.filter(error="").count() == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_relays_share_one_limit(processes, customer, settings):
    """4 relay processes, a limit of 20/s on the provider, 200 messages: never more than 20 in
    any one-second window of sent_at, hence at least ~10 s in all."""
    limit, count, relays = 20, 200, 4
    communication = {**json.loads(processes.env["TEST_COMMUNICATION"])}
    communication["RATE_LIMITS"] = {"filelog": limit}
    processes.env["TEST_COMMUNICATION"] = json.dumps(communication)
    settings.COMMUNICATION = communication
    made = emit_many(
        [{"event_type": "proc.one", "to": customer, "context": {"n": n}} for n in range(count)]
    )
    started = processes.start_relays_together(relays, "--batch-size", "10")
    for relay in started:
        processes.finish(relay, timeout=60)

    assert OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count() == len(made)
    calls = processes.calls()
    assert len(calls) == count and set(calls.values()) == {1}
    sent = [
        m.sent_at.timestamp()
        for m in Message.objects.filter(status=MessageStatus.SENT, error="", provider="filelog")
    ]
    assert len(sent) == count
    busiest = max_in_one_second(sent)
    duration = max(sent) - min(sent)
    ordered = sorted(sent)
    tightest = min(b - a for a, b in zip(ordered, ordered[limit:], strict=False))
    print(f"{count} sent in {duration:.2f}s; at most {busiest} in a second; {tightest=:.3f}s")
    assert busiest <= limit
    assert duration >= 9.5  # 200 / 20 s, less some slack
    assert len({pid for _, pid in read_log(processes.log)}) >= 2  # the relays shared the work
