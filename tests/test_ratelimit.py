"""Shared send-rate limits (COMMUNICATION["RATE_LIMITS"]): slots reserved in the database."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_communication import ratelimit, send
from django_communication.models import Message, MessageStatus, SendRateSlot
from django_communication.providers import memory
from django_communication.ratelimit import GUARD, pacer, reserve
from django_communication.sending import SendRequest, send_many
from outbox import emit_many
from outbox.models import OutboxEvent, OutboxStatus
from tests.providers import read_log
from tests.rates import max_in_one_second


def test_no_limit_no_pacer_no_query(comm_config, customer):
    assert pacer("memory") is None
    send(to=customer, subject="warm", body_text="up")  # settings and templates cached
    with CaptureQueriesContext(connection) as queries:
        send(to=customer, subject="Hi", body_text="Hello")
    assert not any("sendrateslot" in q["sql"].lower() for q in queries.captured_queries)
    assert not SendRateSlot.objects.exists()


#: The slots are read on the database's clock, the waits on this process's: SQLite's
#: julianday('now') has millisecond steps. Not a scheduling margin: a loaded machine makes the
#: calls slower, which ``elapsed`` below absorbs.
CLOCKS = 0.01


@pytest.fixture
def sleeps(monkeypatch):
    """The pacer's sleeps, recorded instead of slept, each with the number of messages the
    memory provider had sent when it began."""
    slept: list[tuple[float, int]] = []
    fake = SimpleNamespace(
        time=time.time,
        monotonic=time.monotonic,
        sleep=lambda seconds: slept.append((seconds, len(memory.messages))),
    )
    monkeypatch.setattr(ratelimit, "time", fake)
    return slept


def test_reserve_hands_out_evenly_spaced_slots(db):
    interval = 60.0  # far longer than the calls take, however loaded the machine
    started = time.monotonic()
    waits = [reserve("p", interval) for _ in range(4)]
    elapsed = time.monotonic() - started
    # The first slot is now; each next one is interval later (minus the time the calls took).
    assert -elapsed - CLOCKS <= waits[0] <= CLOCKS
    for n, wait in enumerate(waits[1:], 1):
        assert n * interval - elapsed - CLOCKS <= wait <= n * interval + CLOCKS
    # An idle bucket (its last slot an hour ago) does not save up a burst: the next slot is
    # "now", not in the past, and the one after it an interval later.
    SendRateSlot.objects.filter(provider="p").update(next_at=time.time() - 3600)
    started = time.monotonic()
    now, later = reserve("p", interval), reserve("p", interval)
    elapsed = time.monotonic() - started
    assert -elapsed - CLOCKS <= now <= CLOCKS
    assert interval - elapsed - CLOCKS <= later <= interval + CLOCKS


def test_send_many_waits_for_slots_and_fails_nothing(comm_config, settings, sleeps):
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 10}}
    interval = (1 + GUARD) / 10
    started = time.monotonic()
    results = send_many(
        [SendRequest(to=f"u{n}@example.com", subject="Hi", body_text="Hello") for n in range(6)],
        concurrency=1,  # in lanes the wait is a queue's timeout: test_lanes.py
    )
    elapsed = time.monotonic() - started
    assert all(m.status == MessageStatus.SENT for m in results)
    # The first goes at once; the n-th waits for its slot, n intervals after the first, before
    # the provider is called (n messages sent so far).
    assert [sent for _, sent in sleeps] == [1, 2, 3, 4, 5]
    for n, (wait, _) in enumerate(sleeps, 1):
        assert n * interval - elapsed - CLOCKS <= wait <= n * interval + CLOCKS
    # Another provider is not limited by this one's slots.
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 10, "console": 1}}
    assert pacer("console") is not None and pacer("django") is None


def test_throttled_message_is_not_failed(comm_config, settings, customer, sleeps):
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 2}}
    started = time.monotonic()
    first = send(to=customer, subject="1", body_text="x")
    second = send(to=customer, subject="2", body_text="x")
    elapsed = time.monotonic() - started
    assert (first.status, second.status) == (MessageStatus.SENT, MessageStatus.SENT)
    [(wait, sent_before)] = sleeps
    assert sent_before == 1
    assert (1 + GUARD) / 2 - elapsed - CLOCKS <= wait <= (1 + GUARD) / 2 + CLOCKS
    assert Message.objects.filter(error="").count() == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_relays_share_one_limit(processes, customer, settings):
    """4 relay processes, a limit of 20/s on the provider, 100 messages: never more than 20 in
    any one-second window of sent_at (which makes the run last over 4 s)."""
    limit, count, relays = 20, 100, 4
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
    assert len({pid for _, pid in read_log(processes.log)}) >= 2  # the relays shared the work
