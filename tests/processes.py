"""Real processes on the test database: relays (``drain_outbox``) and ``qcluster``.

Loaded as a pytest plugin from conftest.py. Subprocesses read tests.settings, with the
COMMUNICATION / OUTBOX / Q_CLUSTER overrides passed as JSON in TEST_COMMUNICATION / TEST_OUTBOX /
TEST_Q_CLUSTER, and send through the ``filelog`` provider, which appends one line per provider
call to a file, so that calls from every process are counted. Tests that use these fixtures need
committed data (``django_db(transaction=True)``) and are marked ``slow`` by conftest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django_q.conf import Conf

from outbox import wakeup
from tests.providers import LOG_ENV, TEST_PROVIDERS, read_log
from tests.rules import RULES
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
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

    def start_relays_together(self, relays: int, *args: str) -> list[subprocess.Popen]:
        """Start ``relays`` relays (``drain_outbox *args``), released together once all started."""
        ready, go = self.tmp_path / "ready", self.tmp_path / "go"
        env = {"READY": str(ready), "GO": str(go)}
        started = [self.start("-c", DRAIN_ON_GO, *args, env=env) for _ in range(relays)]
        wait_for(
            lambda: len(list(self.tmp_path.glob("ready.*"))) == relays, "the relays", timeout=60
        )
        go.touch()
        return started

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
def processes(tmp_path, settings, comm_config, make_template):
    # A lease no test waits for: a test ends one with end_leases(), a relay never outlives it.
    outbox = {"RULES": RULES, "WAKE_ON_COMMIT": False, "LEASE_SECONDS": 120}
    communication = {"PROVIDERS": TEST_PROVIDERS}
    settings.OUTBOX = dict(outbox)
    settings.COMMUNICATION = dict(communication)
    comm_config.email_provider = comm_config.sms_provider = "filelog"
    comm_config.save()
    make_template(
        "ping",
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
    wait_for(lambda: wakeup._timer is None, "the trailing wake-up")
    for process, long_guard_cycle in started:
        processes.stop(process)
        # With a long guard cycle, django-q2 1.10 (Django 4.2) may not stop within the timeout.
        clean = (0, -signal.SIGTERM, -signal.SIGKILL) if long_guard_cycle else (0, -signal.SIGTERM)
        assert process.returncode in clean, processes.output(process)
