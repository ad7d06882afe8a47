"""Ordering keys: events sharing a key go out one at a time, in emit order, whatever the relays.

Multi-process runs use the ``processes`` fixture (tests/processes.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_communication.exceptions import ProviderError
from outbox import InvalidEventError, emit, emit_many
from outbox.claim import claim
from outbox.models import OutboxEvent, OutboxStatus
from outbox.operations import retry_now
from outbox.relay import drain
from tests.events import dispatched_count, make_due, reload
from tests.providers import read_log
from tests.waiting import wait_for


def subjects(scripted) -> list[str]:
    """The ref of each provider call, in call order (key ``outbox:<pk>:...`` → the event)."""
    refs = {str(pk): ref for pk, ref in OutboxEvent.objects.values_list("pk", "context__ref")}
    return [refs[key.split(":")[1]] for key in (call.key for call in scripted.calls)]


def fail_refs(scripted, refs: set[str], retryable: bool = True) -> None:
    """Make the provider fail for the messages of the events with these refs."""

    def on_send(message):
        if any(message.subject == f"Booking {ref}" for ref in refs):
            raise ProviderError(f"refused {message.subject}", retryable=retryable)

    scripted.on_send = on_send


def confirmed(customer, ref: str, key: str | None = "booking:1", **kwargs) -> OutboxEvent:
    return emit("booking.confirmed", to=customer, context={"ref": ref}, ordering_key=key, **kwargs)


# ------------------------------------------------------------------------- the claim


def test_one_event_per_key_per_claim_unkeyed_all(templates, customer, outbox, scripted):
    a1, a2, a3 = (confirmed(customer, f"a{n}", "booking:a") for n in range(1, 4))
    b1, b2 = (confirmed(customer, f"b{n}", "booking:b") for n in range(1, 3))
    free = [confirmed(customer, f"free{n}", None) for n in range(3)]
    _, events = claim(100)
    assert {e.pk for e in events} == {a1.pk, b1.pk, *(e.pk for e in free)}
    # The heads are leased, not finished: the rest of each key waits, even for another relay.
    assert claim(100)[1] == []
    assert reload(a2).claim_token is None and reload(a3).attempts == 0
    assert reload(b2).status == OutboxStatus.PENDING


def test_same_key_is_dispatched_in_emit_order(templates, customer, outbox, scripted):
    for n in range(5):
        confirmed(customer, f"k{n}")
        confirmed(customer, f"free{n}", None)
    summary = drain(batch_size=100)
    assert summary.dispatched == 10
    calls = subjects(scripted)
    assert [ref for ref in calls if ref.startswith("k")] == [f"k{n}" for n in range(5)]
    # The unkeyed ones all went in the first batch, next to the key's first event.
    assert set(calls[:6]) == {"k0", *(f"free{n}" for n in range(5))}


def test_emit_many_keeps_emit_order_within_one_insert(templates, customer, outbox, scripted):
    made = emit_many(
        {
            "event_type": "booking.confirmed",
            "to": customer,
            "context": {"ref": f"{key}{n}"},
            "ordering_key": key,
        }
        for n in range(10)
        for key in ("x", "y")
    )
    seqs = [event.ordering_seq for event in made]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20  # no ties, even in one INSERT
    assert drain(batch_size=100).dispatched == 20
    calls = subjects(scripted)
    for key in ("x", "y"):
        assert [ref for ref in calls if ref.startswith(key)] == [f"{key}{n}" for n in range(10)]


def test_a_retrying_event_holds_back_the_later_events_of_its_key(
    templates, customer, outbox, scripted
):
    confirmed(customer, "first")
    second = confirmed(customer, "second")
    other = confirmed(customer, "other", "booking:2")
    fail_refs(scripted, {"first"})

    summary = drain(batch_size=100)
    assert (summary.dispatched, summary.retried) == (1, 1)  # "other" went; "first" backs off
    assert subjects(scripted) == ["first", "other"]
    assert reload(other).status == OutboxStatus.DISPATCHED
    assert drain().processed == 0  # "second" is due, but "first" is still pending
    assert reload(second).attempts == 0

    make_due()
    summary = drain()
    assert (summary.dispatched, summary.retried) == (0, 1)  # "first" fails again; "second" waits
    scripted.on_send = None
    make_due()
    assert drain().dispatched == 2
    assert subjects(scripted) == ["first", "other", "first", "first", "second"]


def test_a_delayed_event_holds_back_the_later_events_of_its_key(
    templates, customer, outbox, scripted
):
    later = timezone.now() + timedelta(hours=1)
    confirmed(customer, "tomorrow", available_at=later)
    confirmed(customer, "now")
    assert drain().processed == 0
    OutboxEvent.objects.update(available_at=timezone.now())
    assert drain().dispatched == 2
    assert subjects(scripted) == ["tomorrow", "now"]


def test_a_dead_event_lets_the_later_events_of_its_key_go(templates, customer, outbox, scripted):
    """The documented choice: a dead event is a dead letter for an operator, not a plug."""
    first = confirmed(customer, "first")
    confirmed(customer, "second")
    confirmed(customer, "third")
    fail_refs(scripted, {"first"}, retryable=False)
    summary = drain()
    assert (summary.dispatched, summary.dead) == (2, 1)
    assert reload(first).status == OutboxStatus.DEAD
    assert subjects(scripted) == ["first", "second", "third"]

    # Retried by an operator, it is sent on its own, after the others.
    scripted.on_send = None
    assert retry_now(OutboxEvent.objects.filter(pk=first.pk)) == 1
    assert drain().dispatched == 1
    assert subjects(scripted) == ["first", "second", "third", "first"]


def test_giving_up_after_max_attempts_releases_the_key(templates, customer, outbox, scripted):
    outbox["MAX_ATTEMPTS"] = 2
    confirmed(customer, "first")
    confirmed(customer, "second")
    fail_refs(scripted, {"first"})
    assert drain().retried == 1
    make_due()
    summary = drain()
    assert (summary.dispatched, summary.dead) == (1, 1)
    assert subjects(scripted) == ["first", "first", "second"]


def test_a_dead_event_retried_by_an_operator_goes_before_the_rest_of_its_key(
    templates, customer, outbox, scripted
):
    first = confirmed(customer, "first")
    fail_refs(scripted, {"first"}, retryable=False)
    assert drain().dead == 1
    second = confirmed(customer, "second")
    OutboxEvent.objects.filter(pk=second.pk).update(available_at=timezone.now() + timedelta(1))
    scripted.on_send = None
    retry_now(OutboxEvent.objects.filter(pk=first.pk))
    make_due()
    assert drain().dispatched == 2
    assert subjects(scripted) == ["first", "first", "second"]


def test_a_tie_in_the_sequence_is_broken_by_id(templates, customer, outbox, scripted):
    one, two = confirmed(customer, "one"), confirmed(customer, "two")
    OutboxEvent.objects.update(ordering_seq=1)
    _, [head] = claim(10)
    assert head.pk == min(one.pk, two.pk)
    assert claim(10)[1] == []


def test_ordering_key_is_validated(db, customer, outbox):
    for bad in ("", "x" * 256, 42, "a\x00b"):
        with pytest.raises(InvalidEventError, match="ordering_key"):
            confirmed(customer, "bad", bad)
    assert not OutboxEvent.objects.exists()


def test_bound_signal_passes_the_ordering_key(db, customer, booking, outbox):
    from django.dispatch import Signal

    from outbox import bind_signal

    changed = Signal()
    bind_signal(changed, "booking.confirmed", ordering_key=lambda booking, **_: f"b:{booking.pk}")
    changed.send(sender=None, booking=booking)
    changed.send(sender=None, booking=booking)
    first, second = OutboxEvent.objects.order_by("ordering_seq")
    assert first.ordering_key == second.ordering_key == f"b:{booking.pk}"
    assert first.ordering_seq < second.ordering_seq


def test_unkeyed_events_carry_no_sequence(db, customer, outbox):
    event = confirmed(customer, "free", None)
    assert (reload(event).ordering_key, reload(event).ordering_seq) == (None, None)


def test_the_claim_walks_the_due_index(db, customer, outbox):
    """The claim reads the due events in order from a range scan of outbox_due_idx, without a
    sort; only keyed rows probe outbox_ordering_idx for an earlier pending event of their key."""
    emit_many(
        {"event_type": "booking.confirmed", "ordering_key": f"k{n % 20}" if n % 2 else None}
        for n in range(400)
    )
    with CaptureQueriesContext(connection) as queries:
        claim(10)
    [select] = [q["sql"] for q in queries.captured_queries if "LIMIT" in q["sql"]]
    select = select.replace(" FOR UPDATE SKIP LOCKED", "")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE outbox_outboxevent")
            cursor.execute("SET LOCAL enable_seqscan TO off")  # 400 rows: show what it can use
            cursor.execute("EXPLAIN " + select)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index Scan using outbox_due_idx on outbox_outboxevent " in plan, plan
            assert "Sort" not in plan, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + select)
            plan = "\n".join(row[-1] for row in cursor.fetchall())
            assert "USING INDEX outbox_due_idx (status=? AND available_at<?)" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of every pending row
        assert "outbox_ordering_idx" in plan, plan
        assert "SCAN outbox_outboxevent" not in plan  # SQLite: no full table scan


# ------------------------------------------------------------------------- real relays


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "relays, keys, per_key",
    [
        pytest.param(4, 50, 10, marks=pytest.mark.postgres, id="postgresql"),
        pytest.param(3, 10, 5, marks=pytest.mark.sqlite, id="sqlite"),
    ],
)
def test_concurrent_relays_keep_each_key_in_order(processes, customer, relays, keys, per_key):
    # Interleaved, so that every batch holds many keys; a third of the events have no key.
    made = emit_many(
        {
            "event_type": "proc.one",
            "to": customer,
            "context": {"n": n},
            "ordering_key": f"booking:{k}",
        }
        for n in range(per_key)
        for k in range(keys)
    )
    unkeyed = emit_many(
        {"event_type": "proc.one", "to": customer, "context": {"n": n}} for n in range(keys * 3)
    )
    position = {str(event.pk): (event.ordering_key, n) for n, event in enumerate(made)}
    loop = ["--loop", "--interval", "0.05", "--batch-size", "10"]
    started = processes.start_relays_together(relays, *loop)
    total = len(made) + len(unkeyed)
    wait_for(
        lambda: dispatched_count() == total,
        "every event to be dispatched",
        timeout=120,
        interval=0.2,
    )
    for relay in started:
        processes.stop(relay)
        assert relay.returncode == 0, processes.output(relay)

    log = read_log(processes.log)
    calls = [key for key, _ in log]
    assert len(calls) == len(set(calls)) == total  # exactly once
    sent: dict[str, list[int]] = defaultdict(list)
    for key in calls:
        event_id = key.split(":")[1]
        if event_id in position:
            ordering_key, n = position[event_id]
            sent[ordering_key].append(n)
    assert len(sent) == keys
    for ordering_key, order in sent.items():
        assert order == sorted(order), ordering_key  # emit order within each key
    by_relay = {pid for _, pid in log}
    print("relays that sent:", len(by_relay))
    assert len(by_relay) >= 2
