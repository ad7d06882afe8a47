"""The relay: fan-out, routing, retries and the dead letter, leases, pruning, commands, wake-up."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule, Task

from django_communication.exceptions import ProviderError
from django_communication.models import Message, MessageStatus
from django_communication.providers import memory
from outbox import emit, tasks, wakeup
from outbox.claim import claim
from outbox.finalize import backoff, finalize
from outbox.models import OutboxEvent, OutboxStatus
from outbox.outcomes import EventOutcome
from outbox.relay import drain, process_batch
from outbox.retention import prune
from tests.events import make_due, reload
from tests.helpers import Boom
from tests.rules import RULES
from tests.testapp.models import Customer


@pytest.fixture
def fresh_wakeup():
    """No wake-up left over from another test: no recent enqueue, no pending timer."""
    wakeup._last_enqueue = 0.0
    yield
    with wakeup._lock:
        if wakeup._timer is not None:
            wakeup._timer.cancel()
            wakeup._timer = None
    wakeup._last_enqueue = 0.0


# ------------------------------------------------------------------------- fan-out and routing


def test_each_rule_sends_one_message_with_its_own_key(comm_config, templates, customer, outbox):
    confirmed = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    cancelled = emit("booking.cancelled", to=customer, context={"ref": "BK1"})
    summary = drain()
    assert (summary.dispatched, summary.retried, summary.dead) == (2, 0, 0)
    assert [m.channel for m in confirmed.messages()] == ["email"]
    assert sorted(m.channel for m in cancelled.messages()) == ["email", "sms"]
    assert sorted(Message.objects.values_list("idempotency_key", flat=True)) == sorted(
        [
            f"outbox:{confirmed.pk}:booking_confirmation:transactional",
            f"outbox:{cancelled.pk}:booking_cancelled:email",
            f"outbox:{cancelled.pk}:booking_cancelled:sms",
        ]
    )
    assert len(memory.messages) == 3
    for event in (confirmed, cancelled):
        row = reload(event)
        assert row.status == OutboxStatus.DISPATCHED
        assert row.dispatched_at is not None and row.claim_token is None and row.attempts == 1
    assert drain().processed == 0
    assert len(memory.messages) == 3


def test_message_type_routes_and_channel_forces(comm_config, templates, customer, outbox):
    reminder = emit("booking.reminder", to=customer, context={"ref": "BK1"})
    note = emit("booking.note", to=customer, context={"ref": "BK1"})
    forced = emit("booking.note", to=customer, context={"ref": "BK2"}, channel="sms")
    assert drain().dispatched == 3
    # reminder → sms by the routing table; a channel in the rule wins over its message type.
    assert sorted((m.channel, m.message_type) for m in reminder.messages()) == [
        ("email", "reminder"),
        ("sms", "reminder"),
    ]
    # No channel, no message type in the rule: the template's type routes (announcement → email).
    assert [(m.channel, m.message_type) for m in note.messages()] == [("email", "announcement")]
    # The event's channel forces a rule that names none.
    assert [m.channel for m in forced.messages()] == ["sms"]


# ------------------------------------------------------------------------- the dead letter


def test_event_whose_rule_was_removed_is_dead_at_once(comm_config, templates, customer, outbox):
    outbox["RULES"] = {**RULES, "booking.unknown": RULES["booking.note"]}
    event = emit("booking.unknown", to=customer)
    outbox["RULES"] = RULES  # emit() refuses a type without a rule; a deploy can remove one
    summary = drain()
    assert (summary.dispatched, summary.retried, summary.dead) == (0, 0, 1)
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and row.attempts == 1 and row.claim_token is None
    assert row.last_error == "No rule for event type 'booking.unknown' in OUTBOX['RULES']."
    assert memory.messages == [] and Message.objects.count() == 0


def test_missing_template_is_dead_at_once(comm_config, templates, customer, outbox):
    event = emit("booking.missing_template", to=customer)
    assert drain().dead == 1
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and row.attempts == 1
    assert "No active message template with key 'no_such_template'" in row.last_error
    assert memory.messages == []


def test_deleted_recipient_is_dead_at_once(comm_config, templates, customer, booking, outbox):
    other = Customer.objects.create(name="Gone", email="gone@example.com")
    event = emit("booking.confirmed", to=other, context={"ref": "BK1"})
    related_gone = emit("booking.confirmed", to=customer, related_object=other)
    other_pk = other.pk
    other.delete()
    assert drain().dead == 2
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and row.attempts == 1
    content_type = ContentType.objects.get_for_model(Customer)  # its str() differs by Django
    assert row.last_error == f"The recipient ({content_type} {other_pk}) no longer exists."
    assert "related object" in reload(related_gone).last_error
    assert memory.messages == [] and Message.objects.count() == 0


def test_permanent_provider_error_is_dead_at_once(templates, customer, outbox, scripted):
    scripted.fail["email"] = ProviderError("address refused", retryable=False)
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    assert drain().dead == 1
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and row.attempts == 1
    assert "address refused (permanent)" in row.last_error


# ------------------------------------------------------------------------- retries


def test_retryable_failure_backs_off_then_gives_up(templates, customer, outbox, scripted):
    outbox.update(MAX_ATTEMPTS=3, BACKOFF_SECONDS=10, BACKOFF_MAX_SECONDS=3600)
    scripted.fail["email"] = ProviderError("throttled", retryable=True)
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})

    for attempt, ceiling in ((1, 10), (2, 20)):
        before = timezone.now()
        summary = drain()
        assert (summary.dispatched, summary.retried, summary.dead) == (0, 1, 0)
        row = reload(event)
        assert row.status == OutboxStatus.PENDING
        assert row.attempts == attempt
        assert row.claim_token is None
        assert "throttled (retryable)" in row.last_error
        # Backoff: between half the ceiling and the ceiling from now, never due at once.
        assert before + timedelta(seconds=ceiling / 2) <= row.available_at
        assert row.available_at <= timezone.now() + timedelta(seconds=ceiling)
        assert drain().processed == 0  # not due yet
        make_due()

    summary = drain()
    assert (summary.dispatched, summary.retried, summary.dead) == (0, 0, 1)
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and row.attempts == 3
    assert row.last_error.startswith("Gave up after 3 attempts: ")
    assert "throttled" in row.last_error
    assert len(scripted.calls) == 3
    make_due()
    assert drain().processed == 0  # the dead stay dead
    [message] = event.messages()
    assert message.status == MessageStatus.FAILED


def test_retry_succeeds_once_the_provider_recovers(templates, customer, outbox, scripted):
    scripted.fail["email"] = ProviderError("unavailable", retryable=True)
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    assert drain().retried == 1
    scripted.fail.clear()
    make_due()
    assert drain().dispatched == 1
    row = reload(event)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.DISPATCHED, 2, "")
    [message] = event.messages()  # the failed message was sent again, not duplicated
    assert message.status == MessageStatus.SENT
    assert len(scripted.calls) == 2


def test_configuration_error_is_retried_not_dead(comm_config, templates, customer, outbox):
    """An unknown provider in the settings is an administrator's fix away: retry."""
    config = comm_config
    config.email_provider = "no-such-provider"
    config.save()
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    assert drain().retried == 1
    assert "Unknown provider 'no-such-provider'" in reload(event).last_error


def test_backoff_is_exponential_jittered_and_capped(settings):
    settings.OUTBOX = {"BACKOFF_SECONDS": 10, "BACKOFF_MAX_SECONDS": 60}
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (4, 60), (10, 60)):
        for _ in range(20):
            delay = backoff(attempts).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


def buggy_resolver(to, channel):
    if to.name == "Exploding":
        raise RuntimeError("bug in a resolver")
    return getattr(to, "email" if channel == "email" else "phone")


def test_poison_events_do_not_stop_the_batch(comm_config, templates, customer, outbox, settings):
    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": buggy_resolver}
    no_phone = Customer.objects.create(name="No phone", email="np@example.com")
    explodes = Customer.objects.create(name="Exploding", email="x@example.com")
    first = emit("booking.confirmed", to=customer, context={"ref": "A"})
    broken = emit("booking.broken_template", to=customer, context={"ref": "B"})
    no_address = emit("booking.note", to=no_phone, context={"ref": "C"}, channel="sms")
    exploding = emit("booking.confirmed", to=explodes, context={"ref": "D"})
    last = emit("booking.confirmed", to=customer, context={"ref": "E"})

    summary = drain(batch_size=10)
    assert (summary.dispatched, summary.retried, summary.dead) == (2, 1, 2)
    assert reload(first).status == reload(last).status == OutboxStatus.DISPATCHED
    row = reload(broken)
    assert row.status == OutboxStatus.DEAD and "failed to render" in row.last_error
    row = reload(no_address)
    assert row.status == OutboxStatus.DEAD and "has no sms address" in row.last_error
    row = reload(exploding)
    assert row.status == OutboxStatus.PENDING
    assert "unexpected RuntimeError('bug in a resolver')" in row.last_error
    assert sorted(m.subject for m in memory.messages) == ["Booking A", "Booking E"]


def test_retry_after_partial_fan_out_sends_only_the_failed_rule(
    templates, customer, outbox, scripted
):
    scripted.fail["sms"] = ProviderError("gateway timeout", retryable=True)
    event = emit("booking.cancelled", to=customer, context={"ref": "BK1"})
    assert drain().retried == 1
    prefix = f"outbox:{event.pk}:booking_cancelled"
    assert [call.key for call in scripted.calls] == [f"{prefix}:email", f"{prefix}:sms"]
    assert "booking_cancelled (sms): " in reload(event).last_error

    scripted.fail.clear()
    make_due()
    assert drain().dispatched == 1
    assert [call.key for call in scripted.calls] == [
        f"{prefix}:email",
        f"{prefix}:sms",
        f"{prefix}:sms",  # only the rule that had failed
    ]
    assert sorted(event.messages().values_list("channel", "status")) == [
        ("email", MessageStatus.SENT),
        ("sms", MessageStatus.SENT),
    ]


# ------------------------------------------------------------------------- leases


def test_relay_whose_lease_ran_out_changes_nothing(comm_config, templates, customer, outbox):
    events = [emit("booking.confirmed", to=customer, context={"ref": f"R{n}"}) for n in range(3)]
    stale_token, stale_events = claim(10)
    assert len(stale_events) == 3
    assert claim(10)[1] == []  # leased: another relay gets nothing
    assert all(reload(e).claim_token == stale_token for e in events)

    make_due()  # the lease ran out while the first relay was stuck
    second = drain()
    assert second.dispatched == 3
    assert len(memory.messages) == 3

    # The stuck relay wakes up: it may call send() again, but each message carries an
    # idempotency key, and its finalize matches no row.
    late = process_batch(stale_token, stale_events)
    assert (late.dispatched, late.lost_lease) == (0, 3)
    assert len(memory.messages) == 3
    # A late failure report does not touch the events either.
    late = finalize(
        stale_token,
        [
            EventOutcome(e, errors=["late"], retryable=r)
            for e, r in zip(stale_events, (True, False, True), strict=True)
        ],
    )
    assert (late.retried, late.dead, late.lost_lease) == (0, 0, 3)
    for event in events:
        row = reload(event)
        assert (row.status, row.last_error, row.attempts) == (OutboxStatus.DISPATCHED, "", 2)


def test_claim_leases_for_lease_seconds(comm_config, templates, customer, outbox):
    outbox["LEASE_SECONDS"] = 120
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    before = timezone.now()
    token, [claimed] = claim(5)
    row = reload(event)
    assert row.claim_token == token and claimed.attempts == row.attempts == 1
    assert before + timedelta(seconds=119) <= row.available_at
    assert row.available_at <= timezone.now() + timedelta(seconds=120)
    assert row.status == OutboxStatus.PENDING


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "select-then-update"])
def test_claim_takes_the_oldest_due_events_once(
    comm_config, templates, customer, outbox, monkeypatch, returning
):
    """Both claim paths: UPDATE … RETURNING, and (MySQL, SQLite before 3.35) SELECT then UPDATE."""
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", returning)
    events = [emit("booking.confirmed", to=customer, context={"ref": f"BK{n}"}) for n in range(5)]
    later = emit("booking.confirmed", to=customer, available_at=timezone.now() + timedelta(hours=1))
    first_token, first = claim(3)
    second_token, second = claim(10)
    assert [e.pk for e in first] == [e.pk for e in events[:3]]
    assert [e.pk for e in second] == [e.pk for e in events[3:]]
    assert all(e.claim_token == first_token and e.attempts == 1 for e in first)
    assert all(reload(e).claim_token == second_token for e in events[3:])
    assert first[0].context == {"ref": "BK0"} and first[0].to_object_id == str(customer.pk)
    assert claim(10)[1] == []
    assert reload(later).claim_token is None


def test_cancelled_events_are_not_sent(comm_config, templates, customer, outbox):
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.CANCELLED)
    assert drain().processed == 0
    assert memory.messages == []


# ------------------------------------------------------------------------- pruning


def test_prune_deletes_only_old_dispatched_and_cancelled(db, customer, outbox):
    old = timezone.now() - timedelta(days=8)
    made = {}
    for status in OutboxStatus.values:
        for age in ("old", "new"):
            event = emit("booking.confirmed", to=customer)
            OutboxEvent.objects.filter(pk=event.pk).update(
                status=status, updated_at=old if age == "old" else timezone.now()
            )
            made[(status, age)] = event.pk
    assert prune() == 2
    remaining = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert remaining == {
        pk
        for (status, age), pk in made.items()
        if not (age == "old" and status in ("dispatched", "cancelled"))
    }
    # Never the pending or dead ones, whatever their age.
    assert prune(older_than_days=0) == 2
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"pending", "dead"}
    assert OutboxEvent.objects.count() == 4


def test_prune_command_and_task(db, customer, outbox):
    event = emit("booking.confirmed", to=customer)
    OutboxEvent.objects.filter(pk=event.pk).update(
        status=OutboxStatus.DISPATCHED, updated_at=timezone.now() - timedelta(days=2)
    )
    out = StringIO()
    call_command("prune_outbox", "--days", "3", stdout=out)
    assert out.getvalue().strip() == "Pruned 0 outbox events."
    with pytest.raises(CommandError, match="--days must be >= 0"):
        call_command("prune_outbox", "--days", "-1")
    outbox["RETENTION_DAYS"] = 1
    assert tasks.prune() == 1
    assert not OutboxEvent.objects.exists()


# ------------------------------------------------------------------------- drain_outbox


def test_drain_command_reports_and_honours_limit_and_batch_size(
    comm_config, templates, customer, outbox, monkeypatch
):
    from outbox import relay

    sizes = []
    real_claim = relay.claim

    def recording_claim(batch_size, token=None):
        sizes.append(batch_size)
        return real_claim(batch_size, token)

    monkeypatch.setattr(relay, "claim", recording_claim)
    for n in range(5):
        emit("booking.confirmed", to=customer, context={"ref": f"R{n}"})
    emit("booking.missing_template", to=customer)

    out = StringIO()
    call_command("drain_outbox", "--limit", "3", "--batch-size", "2", stdout=out)
    assert (
        out.getvalue()
        == "Outbox drained: events dispatched 3, retried 0, dead 0; messages sent 3.\n"
    )
    assert sizes == [2, 1]
    assert OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count() == 3

    sizes.clear()
    out = StringIO()
    call_command("drain_outbox", "--batch-size", "2", stdout=out)
    assert (
        out.getvalue()
        == "Outbox drained: events dispatched 2, retried 0, dead 1; messages sent 2.\n"
    )
    assert sizes == [2, 2, 2]  # R3 and R4; the missing template; then nothing
    assert len(memory.messages) == 5

    out = StringIO()
    call_command("drain_outbox", stdout=out)
    assert (
        out.getvalue()
        == "Outbox drained: events dispatched 0, retried 0, dead 0; messages sent 0.\n"
    )


def test_a_rate_limit_cuts_the_batch_to_what_half_the_lease_can_send(
    comm_config, templates, customer, outbox, settings, monkeypatch
):
    from outbox import relay

    sizes = []
    real_claim = relay.claim
    monkeypatch.setattr(
        relay, "claim", lambda size, token=None: sizes.append(size) or real_claim(size, token)
    )
    outbox["LEASE_SECONDS"] = 2.2
    settings.COMMUNICATION = {"RATE_LIMITS": {"memory": 10, "console": 5}}
    # Half the lease (1.1 s) at the slowest limit, 5/s with slots 1.1/5 s apart: 5 events.
    assert relay.lease_safe_batch_size(500) == 5
    assert relay.lease_safe_batch_size(3) == 3
    for n in range(7):
        emit("booking.confirmed", to=customer, context={"ref": f"R{n}"})
    assert drain().dispatched == 7
    assert sizes[:2] == [5, 5]
    outbox["LEASE_SECONDS"] = 0.01  # never below one event
    assert relay.lease_safe_batch_size(500) == 1
    settings.COMMUNICATION = {}
    assert relay.lease_safe_batch_size(500) == 500


@pytest.mark.parametrize(
    "arguments, error",
    [
        (["--limit", "0"], "--limit must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--batch-size", "-5"], "--batch-size must be at least 1"),
        (["--interval", "0"], "--interval must be greater than 0"),
        (["--limit", "many"], "invalid int value: 'many'"),
    ],
)
def test_drain_command_rejects_bad_values(db, outbox, arguments, error):
    with pytest.raises(CommandError, match=error):
        call_command("drain_outbox", *arguments)


def test_drain_task_returns_the_summary(comm_config, templates, customer, outbox):
    emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    assert tasks.drain() == "events dispatched 1, retried 0, dead 0; messages sent 1"


# ------------------------------------------------------------------------- wake-up on commit


@pytest.mark.django_db(transaction=True)
def test_commit_dispatches_through_the_django_q_task(
    comm_config, templates, customer, booking, settings, fresh_wakeup
):
    settings.OUTBOX = {"RULES": RULES, "WAKE_INTERVAL_SECONDS": 0}
    with transaction.atomic():
        emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
        emit("booking.cancelled", to=customer, context={"ref": "BK1"}, related_object=booking)
        assert memory.messages == []  # nothing leaves before the commit
    # Q_CLUSTER["sync"] runs the task inside the on_commit callback.
    assert len(memory.messages) == 3
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.DISPATCHED}
    [task] = Task.objects.all()
    assert (task.func, task.success, task.group) == ("outbox.tasks.drain", True, "outbox")
    assert task.result == "events dispatched 2, retried 0, dead 0; messages sent 3"


@pytest.mark.django_db(transaction=True)
def test_rollback_does_not_wake_the_relay(
    comm_config, templates, customer, settings, fresh_wakeup, monkeypatch
):
    settings.OUTBOX = {"RULES": RULES, "WAKE_INTERVAL_SECONDS": 0}
    enqueued = []
    monkeypatch.setattr(wakeup, "enqueue_drain", lambda: enqueued.append(1))
    with pytest.raises(Boom), transaction.atomic():
        emit("booking.confirmed", to=customer, context={"ref": "BK1"})
        raise Boom
    assert enqueued == []
    assert not Task.objects.exists()
    assert memory.messages == [] and not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_wakes_at_once(
    comm_config, templates, customer, settings, fresh_wakeup
):
    settings.OUTBOX = {"RULES": RULES, "WAKE_INTERVAL_SECONDS": 0}
    emit("booking.confirmed", to=customer, context={"ref": "BK1"})  # autocommit
    assert len(memory.messages) == 1


def test_many_emits_in_a_transaction_register_one_callback(
    db, customer, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX = {"RULES": RULES}
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for n in range(50):
            emit("booking.confirmed", to=customer, context={"n": n})
        with transaction.atomic():
            emit("booking.confirmed", to=customer)
    assert callbacks == [wakeup.wake]


def test_a_rolled_back_savepoint_does_not_lose_the_wake_up(
    db, customer, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX = {"RULES": RULES}
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():
            emit("booking.confirmed", to=customer)  # registers the callback...
            raise Boom  # ...which goes with the savepoint
        emit("booking.confirmed", to=customer)  # so this one must register again
        emit("booking.confirmed", to=customer)
    assert callbacks == [wakeup.wake]


def test_no_callback_when_wake_on_commit_is_off(
    db, customer, outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        emit("booking.confirmed", to=customer)
    assert callbacks == []


class FakeTimer:
    """threading.Timer that runs only when the test calls ``fire()``."""

    started: list[FakeTimer] = []

    def __init__(self, interval: float, function) -> None:
        self.interval, self.function, self.daemon = interval, function, False

    def start(self) -> None:
        type(self).started.append(self)

    def cancel(self) -> None:
        pass

    def fire(self) -> None:
        self.function()


def test_wakes_within_the_interval_coalesce_into_one_trailing_enqueue(
    settings, fresh_wakeup, monkeypatch
):
    """On wakeup's own clock and timer, moved by hand: no machine is too slow for 0.3 s."""
    settings.OUTBOX = {"WAKE_INTERVAL_SECONDS": 0.3}
    now = [1000.0]
    monkeypatch.setattr(wakeup, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(wakeup, "threading", SimpleNamespace(Timer=FakeTimer))
    monkeypatch.setattr(FakeTimer, "started", [])
    enqueued = []
    monkeypatch.setattr(wakeup, "enqueue_drain", lambda: enqueued.append(now[0]))
    for n in range(20):
        now[0] = 1000.0 + n * 0.01  # 20 wakes in 0.2 s
        wakeup.wake()
    assert enqueued == [1000.0]  # the first at once...
    [timer] = FakeTimer.started  # ...the others share one timer, for the rest of the interval
    assert timer.interval == pytest.approx(0.3 - 0.01)
    now[0] = 1000.3
    timer.fire()
    assert enqueued == [1000.0, 1000.3]  # ...which enqueues once when the interval ends
    assert wakeup._timer is None
    now[0] = 1000.35  # a wake inside the new interval waits for its end
    wakeup.wake()
    assert len(enqueued) == 2 and FakeTimer.started[-1].interval == pytest.approx(0.25)
    now[0] = 1000.7  # after it, at once
    FakeTimer.started[-1].fire()
    now[0] = 1001.1
    wakeup.wake()
    assert enqueued == [1000.0, 1000.3, 1000.7, 1001.1]


def test_a_broker_outage_does_not_fail_the_commit(settings, fresh_wakeup, monkeypatch, caplog):
    settings.OUTBOX = {"WAKE_INTERVAL_SECONDS": 0}

    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("django_q.tasks.async_task", broken)
    wakeup.wake()  # logs, does not raise
    assert "could not queue a drain task" in caplog.text


# ------------------------------------------------------------------------- schedule


def test_outbox_schedule_creates_the_schedules_idempotently(db, settings):
    settings.OUTBOX = {"SCHEDULE_MINUTES": 5}
    out = StringIO()
    call_command("outbox_schedule", stdout=out)
    call_command("outbox_schedule", stdout=out)
    assert "every 5 minute(s)" in out.getvalue()
    drain_schedule = Schedule.objects.get(name="outbox-drain")
    assert (drain_schedule.func, drain_schedule.schedule_type, drain_schedule.minutes) == (
        "outbox.tasks.drain",
        Schedule.MINUTES,
        5,
    )
    assert drain_schedule.repeats == -1
    prune_schedule = Schedule.objects.get(name="outbox-prune")
    assert (prune_schedule.func, prune_schedule.schedule_type) == (
        "outbox.tasks.prune",
        Schedule.DAILY,
    )
    assert Schedule.objects.count() == 2

    settings.OUTBOX = {"SCHEDULE_MINUTES": 2}
    call_command("outbox_schedule", stdout=StringIO())
    assert Schedule.objects.count() == 2
    assert Schedule.objects.get(name="outbox-drain").minutes == 2


def test_connection_is_not_left_in_a_transaction_by_drain(comm_config, templates, customer, outbox):
    emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    depth = len(connection.savepoint_ids)
    drain()
    assert len(connection.savepoint_ids) == depth


def test_event_claimed_more_than_max_attempts_is_dead_without_sending(
    comm_config, templates, customer, outbox, settings
):
    """A relay that dies on an event every time never finishes its batch; the claims count."""
    settings.OUTBOX = {**outbox, "MAX_ATTEMPTS": 3}
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    OutboxEvent.objects.filter(pk=event.pk).update(attempts=3)  # three claims, none finished
    assert drain().dead == 1
    row = reload(event)
    assert row.status == OutboxStatus.DEAD and "Claimed 4 times" in row.last_error
    assert memory.messages == []


def test_a_stored_id_that_no_longer_fits_fails_only_its_event(
    comm_config, templates, customer, outbox
):
    good = emit("booking.confirmed", to=customer, context={"ref": "A"})
    bad = emit("booking.confirmed", to=customer, context={"ref": "B"})
    OutboxEvent.objects.filter(pk=bad.pk).update(to_object_id="not-a-number")
    summary = drain()
    assert (summary.dispatched, summary.dead) == (1, 1)
    assert reload(good).status == OutboxStatus.DISPATCHED
    assert "no longer exists" in reload(bad).last_error


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("async_commit, expected", [(True, "off"), (False, "on")])
def test_relay_commits_without_waiting_for_the_wal_flush_on_postgresql(
    templates, customer, outbox, scripted, settings, async_commit, expected
):
    settings.OUTBOX = {**outbox, "ASYNC_COMMIT": async_commit}
    seen = []

    def observe(message):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            seen.append(cursor.fetchone()[0])

    scripted.on_send = observe
    emit("booking.confirmed", to=customer, context={"ref": "A"})
    assert drain().dispatched == 1
    assert seen == [expected]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # the connection's own setting is back


def test_a_batch_is_sent_oldest_first(comm_config, templates, customer, outbox):
    for ref in ("first", "second", "third"):
        emit("booking.confirmed", to=customer, context={"ref": ref})
    assert drain(batch_size=10).dispatched == 3
    assert [m.subject for m in memory.messages] == [
        "Booking first",
        "Booking second",
        "Booking third",
    ]
