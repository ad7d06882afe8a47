"""The outbox across real processes: concurrent relays, a relay killed mid-batch, a provider
outage, and a real django-q2 cluster.

The processes, and the ``processes`` and ``cluster`` fixtures that start them, are described
in tests/processes.py.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import timedelta

import boto3
import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule, Task

from django_communication.models import Message, MessageStatus
from outbox import emit, emit_many
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.events import dispatched_count, end_leases
from tests.processes import expected_keys
from tests.providers import BLOCK_AFTER_ENV, BLOCK_MARKER_ENV, read_log
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLAIM_THEN_DIE = """
import os, signal, django
django.setup()
from outbox.claim import claim
token, events = claim(int(os.environ["CLAIM"]))
print(len(events), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

# ------------------------------------------------------------------------- concurrent relays


def run_concurrent_relays(processes, customer, events: int, relays: int) -> None:
    made = emit_many(
        [
            {
                "event_type": "proc.two" if n % 4 == 0 else "proc.one",
                "to": customer,
                "context": {"n": n},
            }
            for n in range(events)
        ]
    )
    assert len(made) == events
    started = processes.start_relays_together(relays, "--batch-size", "25")
    outputs = [processes.finish(relay, timeout=90) for relay in started]

    calls = processes.calls()
    expected = expected_keys(made)
    assert len(expected) == events * 5 // 4
    assert set(calls) == expected
    assert [key for key, count in calls.items() if count != 1] == []
    assert dispatched_count() == events
    assert Message.objects.filter(status=MessageStatus.SENT).count() == len(expected)
    # Each relay reports what it did; together exactly the events, and no lease was lost.
    dispatched = 0
    for output in outputs:
        line = output.strip().splitlines()[-1]
        assert line.startswith("Outbox drained: events dispatched "), output
        assert ", retried 0, dead 0; messages sent " in line, output
        dispatched += int(line.split()[4].rstrip(","))
    assert dispatched == events
    # The relays really ran side by side.
    by_relay = Counter(pid for _, pid in read_log(processes.log))
    print("provider calls per relay:", sorted(by_relay.values()))
    assert len(by_relay) >= 2


@pytest.mark.postgres
def test_concurrent_relays_send_every_message_exactly_once(processes, customer):
    run_concurrent_relays(processes, customer, events=2000, relays=4)


@pytest.mark.sqlite
def test_concurrent_relays_on_sqlite_take_turns(processes, customer):
    """SQLite has no row locks: relays claim with one UPDATE each, waiting for the database lock
    instead of failing with "database is locked"."""
    run_concurrent_relays(processes, customer, events=240, relays=3)


# ------------------------------------------------------------------------- crashes


def test_relay_killed_after_claiming_is_replaced_after_the_lease(processes, customer):
    events = [emit("proc.one", to=customer, context={"n": n}) for n in range(30)]
    crashed = processes.start("-c", CLAIM_THEN_DIE, env={"CLAIM": "20"})
    crashed.wait(30)
    assert crashed.returncode == -signal.SIGKILL, processes.output(crashed)
    assert processes.output(crashed).strip() == "20"
    leased = OutboxEvent.objects.filter(claim_token__isnull=False)
    assert leased.count() == 20
    assert all(event.attempts == 1 and event.available_at > timezone.now() for event in leased)

    # Another relay: the 10 unclaimed events go, the leased 20 wait for the lease.
    assert drain().dispatched == 10
    assert dispatched_count() == 10
    end_leases()
    assert "dispatched 20," in processes.drain()

    calls = processes.calls()
    assert set(calls) == expected_keys(events)
    assert set(calls.values()) == {1}
    assert dispatched_count() == 30


def test_relay_killed_mid_batch_does_not_send_twice(processes, customer, tmp_path):
    events = [emit("proc.one", to=customer, context={"n": n}) for n in range(30)]
    marker = tmp_path / "blocked"
    stuck = processes.django(
        "drain_outbox",
        "--batch-size",
        "30",
        env={BLOCK_AFTER_ENV: "10", BLOCK_MARKER_ENV: str(marker)},
    )
    wait_for(marker.exists, "the relay to block in its 11th provider call")
    os.killpg(stuck.pid, signal.SIGKILL)
    stuck.wait(10)
    first = read_log(processes.log)
    assert len(first) == 10 and {pid for _, pid in first} == {stuck.pid}
    # Ten messages went out and are recorded as sent; the event rows were never finalized.
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 10
    assert OutboxEvent.objects.filter(claim_token__isnull=False).count() == 30
    assert dispatched_count() == 0

    end_leases()
    output = processes.drain()
    # The second relay sends the other 20; the ten the killed relay sent are not counted again.
    assert "events dispatched 30, retried 0, dead 0; messages sent 20." in output
    calls = processes.calls()
    assert set(calls) == expected_keys(events)
    assert set(calls.values()) == {1}  # the ten sent before the crash were not sent again
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {2}
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 30


def test_looping_relay_sends_as_events_arrive_and_stops_on_sigterm(processes, customer):
    relay = processes.django("drain_outbox", "--loop", "--interval", "0.1", "--batch-size", "5")
    events = []
    for batch in range(3):
        with transaction.atomic():
            events += [
                emit("proc.two", to=customer, context={"n": batch * 10 + n}) for n in range(10)
            ]
        # The running relay finds each batch, committed after it started.
        sent = len(events)
        wait_for(lambda sent=sent: dispatched_count() == sent, "the looping relay")
    processes.stop(relay)
    assert relay.returncode == 0, processes.output(relay)
    assert (
        processes.output(relay)
        .strip()
        .endswith("Outbox drained: events dispatched 30, retried 0, dead 0; messages sent 60.")
    )
    calls = processes.calls()
    assert set(calls) == expected_keys(events) and set(calls.values()) == {1}


# ------------------------------------------------------------------------- provider outage

SES_REGION = "eu-west-1"


def test_ses_outage_keeps_events_pending_then_sends_each_once(
    processes, comm_config, customer, moto_server
):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    comm_config.email_provider = "ses"
    comm_config.ses_region = SES_REGION
    comm_config.email_from_address = "shop@example.com"
    comm_config.save()
    boto3.client("sesv2", region_name=SES_REGION).create_email_identity(
        EmailIdentity="shop@example.com"
    )
    moto_server.requests.clear()
    sent_by_moto = ses_backends[DEFAULT_ACCOUNT_ID][SES_REGION].sent_messages
    events = [emit("proc.one", to=customer, context={"n": n}) for n in range(3)]

    moto_server.stop()
    before = timezone.now()
    summary = drain()
    assert (summary.dispatched, summary.retried, summary.dead) == (0, 3, 0)
    for event in OutboxEvent.objects.all():
        assert event.status == OutboxStatus.PENDING
        assert event.attempts == 1
        assert event.available_at > before
        assert "EndpointConnectionError" in event.last_error
        assert "(retryable)" in event.last_error
    assert not Message.objects.filter(status=MessageStatus.SENT).exists()
    assert Message.objects.filter(status=MessageStatus.FAILED).count() == 3
    assert len(sent_by_moto) == 0 and moto_server.ses_send_email_calls() == []

    moto_server.start()
    assert drain().processed == 0  # backing off
    OutboxEvent.objects.update(available_at=timezone.now())
    summary = drain()
    assert (summary.dispatched, summary.retried, summary.dead) == (3, 0, 0)
    assert dispatched_count() == 3
    assert len(sent_by_moto) == 3
    calls = moto_server.ses_send_email_calls()
    assert sorted(call["Content"]["Simple"]["Subject"]["Data"] for call in calls) == [
        "Ping 0",
        "Ping 1",
        "Ping 2",
    ]
    for event in events:
        [message] = event.messages()
        assert message.status == MessageStatus.SENT
        assert message.provider_message_id in {m.id for m in sent_by_moto}
    assert drain().processed == 0
    assert len(sent_by_moto) == 3


# ------------------------------------------------------------------------- a real qcluster


@pytest.mark.postgres
def test_qcluster_dispatches_what_commits_wake_up(processes, cluster, customer):
    processes.set_outbox(WAKE_ON_COMMIT=True)
    cluster()
    events = []
    for batch in range(5):
        with transaction.atomic():
            events += [
                emit("proc.two", to=customer, context={"n": batch * 20 + n}) for n in range(20)
            ]
    wait_for(lambda: dispatched_count() == 100, "the cluster to dispatch 100 events", interval=0.2)
    calls = processes.calls()
    assert set(calls) == expected_keys(events) and set(calls.values()) == {1}
    tasks = Task.objects.filter(func="outbox.tasks.drain")
    wait_for(tasks.exists, "the drain tasks' saved results", interval=0.2)  # saved after they ran
    assert all(task.success for task in tasks)
    # Coalesced: at most one task per committed transaction, usually fewer.
    assert tasks.count() <= 5


@pytest.mark.postgres
def test_qcluster_runs_the_outbox_schedule(processes, cluster, customer):
    from django.core.management import call_command
    from django.utils.module_loading import import_string

    call_command("outbox_schedule", stdout=open(os.devnull, "w"))  # noqa: SIM115
    schedule = Schedule.objects.get(name="outbox-drain")
    assert schedule.func == "outbox.tasks.drain" and schedule.next_run <= timezone.now()
    # The scheduled function drains.
    first = [emit("proc.one", to=customer, context={"n": n}) for n in range(5)]
    assert (
        import_string(schedule.func)() == "events dispatched 5, retried 0, dead 0; messages sent 5"
    )

    # And a real cluster runs it: django-q2's sentinel runs the scheduler when its guard loop
    # has counted 30 seconds; a 30-second guard cycle makes that its first iteration.
    later = [emit("proc.one", to=customer, context={"n": n}) for n in range(5, 10)]
    cluster(guard_cycle=30)
    wait_for(lambda: dispatched_count() == 10, "the scheduled drain", interval=0.2)
    # The cluster's monitor saves a task's result after the task has run: wait for it too.
    drained = Task.objects.filter(func="outbox.tasks.drain", success=True)
    wait_for(drained.exists, "the drain task's saved result", interval=0.2)
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now() + timedelta(seconds=30)  # next run in a minute
    calls = processes.calls()
    assert set(calls) == expected_keys(first + later) and set(calls.values()) == {1}
