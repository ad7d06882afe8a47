"""The outbox across real processes: concurrent relays, a relay killed mid-batch, a provider
outage, and a real django-q2 cluster.

Relays run as ``python -m django ...`` subprocesses on the test database (committed data, hence
``transaction=True``). They read tests.settings, with the COMMUNICATION / OUTBOX / Q_CLUSTER
overrides passed as JSON in TEST_COMMUNICATION / TEST_OUTBOX / TEST_Q_CLUSTER. The ``filelog``
provider appends one line per provider call to a file, so calls from every process are counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Task

from django_communication.models import Message, MessageStatus, MessageTemplate
from outbox import emit, emit_many, wakeup
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.outbox_providers import (
    BLOCK_AFTER_ENV,
    BLOCK_MARKER_ENV,
    LOG_ENV,
    OUTBOX_PROVIDERS,
    read_log,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
RULES = {
    "proc.one": {"template_key": "ping", "channel": "email"},
    "proc.two": [
        {"template_key": "ping", "channel": "email"},
        {"template_key": "ping", "channel": "sms"},
    ],
}
CLAIM_THEN_DIE = """
import os, signal, django
django.setup()
from outbox.claim import claim
token, events = claim(int(os.environ["CLAIM"]))
print(len(events), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
#: drain_outbox with its arguments, started when the file GO exists (after writing READY.<pid>),
#: so that relays begin together however long each took to start.
DRAIN_ON_GO = """
import os, sys, time, django
django.setup()
from django.core.management import call_command
open(f"{os.environ['READY']}.{os.getpid()}", "w").close()
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.01)
call_command("drain_outbox", *sys.argv[1:])
"""


def subprocess_database_url() -> str:
    """A DATABASE_URL for the test database this process uses (test_<name>)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return "sqlite:///" + str(Path(db["NAME"]).resolve())
    assert connection.vendor == "postgresql", connection.vendor
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"


class Processes:
    """Subprocesses on the test database; every one still running is killed at teardown."""

    def __init__(self, tmp_path: Path, settings, outbox: dict, communication: dict) -> None:
        self.tmp_path = tmp_path
        self.settings = settings
        self.log = tmp_path / "provider-calls.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TEST_")},
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": subprocess_database_url(),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TEST_OUTBOX": json.dumps(outbox),
            "TEST_COMMUNICATION": json.dumps(communication),
            LOG_ENV: str(self.log),
        }
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        output = self.tmp_path / f"process-{len(self.started)}.out"
        with open(output, "w") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((process, output))
        return process

    def set_outbox(self, **overrides) -> None:
        """Change OUTBOX here and in the subprocesses started from now on."""
        outbox = {**json.loads(self.env["TEST_OUTBOX"]), **overrides}
        self.env["TEST_OUTBOX"] = json.dumps(outbox)
        self.settings.OUTBOX = outbox

    def django(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return self.start("-m", "django", *args, env=env)

    def output(self, process: subprocess.Popen) -> str:
        return next(path for p, path in self.started if p is process).read_text()

    def finish(self, process: subprocess.Popen, timeout: float = 60) -> str:
        """Wait for a process that should exit 0; return its output."""
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"timed out:\n{self.output(process)}")
        assert process.returncode == 0, self.output(process)
        return self.output(process)

    def drain(self, *args: str, env: dict | None = None) -> str:
        return self.finish(self.django("drain_outbox", *args, env=env))

    def stop(self, process: subprocess.Popen, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL for the whole session if it does not exit in time."""
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def kill_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            else:
                # A cluster's children (workers) are in its session: none may outlive the test.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)

    def calls(self) -> Counter:
        return Counter(key for key, _ in read_log(self.log))


@pytest.fixture
def processes(tmp_path, settings, comm_config):
    outbox = {"RULES": RULES, "WAKE_ON_COMMIT": False, "LEASE_SECONDS": 2}
    communication = {"PROVIDERS": OUTBOX_PROVIDERS}
    settings.OUTBOX = dict(outbox)
    settings.COMMUNICATION = dict(communication)
    comm_config.email_provider = comm_config.sms_provider = "filelog"
    comm_config.save()
    MessageTemplate.objects.create(
        key="ping",
        name="Ping",
        email_subject="Ping {{ n }}",
        email_body_text="Ping {{ n }}",
        sms_body="Ping {{ n }}",
    )
    running = Processes(tmp_path, settings, outbox, communication)
    os.environ[LOG_ENV] = str(running.log)  # for the relays run in this process
    try:
        yield running
    finally:
        running.kill_all()
        os.environ.pop(LOG_ENV, None)


def expected_keys(events) -> set[str]:
    keys = set()
    for event in events:
        channels = ["email", "sms"] if event.event_type == "proc.two" else ["email"]
        keys |= {f"outbox:{event.pk}:ping:{channel}" for channel in channels}
    return keys


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_lease_to_end() -> None:
    leased = OutboxEvent.objects.filter(claim_token__isnull=False)
    latest = max(leased.values_list("available_at", flat=True), default=timezone.now())
    time.sleep(max(0.0, (latest - timezone.now()).total_seconds()) + 0.1)


def dispatched_count() -> int:
    return OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count()


# ------------------------------------------------------------------------- concurrent relays


def run_concurrent_relays(processes, customer, events: int, relays: int) -> None:
    # A lease far longer than any batch: a relay that outlives its lease may send again, by design.
    processes.set_outbox(LEASE_SECONDS=120)
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
    ready, go = processes.tmp_path / "ready", processes.tmp_path / "go"
    env = {"READY": str(ready), "GO": str(go)}
    started = [
        processes.start("-c", DRAIN_ON_GO, "--batch-size", "25", env=env) for _ in range(relays)
    ]
    wait_for(lambda: len(list(processes.tmp_path.glob("ready.*"))) == relays, 60, "the relays")
    go.touch()
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

    # Another relay at once (this process: a subprocess might start after the lease ends): the
    # 10 unclaimed events go, the leased 20 wait for the lease.
    assert drain().dispatched == 10
    assert dispatched_count() == 10
    wait_for_lease_to_end()
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
    wait_for(marker.exists, 30, "the relay to block in its 11th provider call")
    os.killpg(stuck.pid, signal.SIGKILL)
    stuck.wait(10)
    first = read_log(processes.log)
    assert len(first) == 10 and {pid for _, pid in first} == {stuck.pid}
    # Ten messages went out and are recorded as sent; the event rows were never finalized.
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 10
    assert OutboxEvent.objects.filter(claim_token__isnull=False).count() == 30
    assert dispatched_count() == 0

    wait_for_lease_to_end()
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
        time.sleep(0.2)
    wait_for(lambda: dispatched_count() == 30, 30, "the looping relay")
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


@pytest.fixture
def cluster(processes, monkeypatch):
    """Start ``qcluster`` on the ORM broker; this process enqueues to the same broker."""
    monkeypatch.setattr(Conf, "SYNC", False)
    wakeup._last_enqueue = 0.0
    started = []

    def start(**q_cluster) -> subprocess.Popen:
        options = {"sync": False, "workers": 2, "poll": 0.1, **q_cluster}
        process = processes.django("qcluster", env={"TEST_Q_CLUSTER": json.dumps(options)})
        started.append((process, options.get("guard_cycle", 0.5) > 1))
        return process

    yield start
    wait_for(lambda: wakeup._timer is None, 5, "the trailing wake-up")
    for process, long_guard_cycle in started:
        processes.stop(process)
        # With a long guard cycle, django-q2 1.10 (Django 4.2) may not stop within the timeout.
        clean = (0, -signal.SIGTERM, -signal.SIGKILL) if long_guard_cycle else (0, -signal.SIGTERM)
        assert process.returncode in clean, processes.output(process)


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
    wait_for(lambda: dispatched_count() == 100, 20, "the cluster to dispatch 100 events", 0.2)
    calls = processes.calls()
    assert set(calls) == expected_keys(events) and set(calls.values()) == {1}
    tasks = Task.objects.filter(func="outbox.tasks.drain")
    wait_for(tasks.exists, 15, "the drain tasks' saved results", 0.2)  # saved after they ran
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
    wait_for(lambda: dispatched_count() == 10, 20, "the scheduled drain", 0.2)
    # The cluster's monitor saves a task's result after the task has run: wait for it too.
    drained = Task.objects.filter(func="outbox.tasks.drain", success=True)
    wait_for(drained.exists, 15, "the drain task's saved result", 0.2)
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now() + timedelta(seconds=30)  # next run in a minute
    calls = processes.calls()
    assert set(calls) == expected_keys(first + later) and set(calls.values()) == {1}
