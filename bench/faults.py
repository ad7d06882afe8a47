#!/usr/bin/env python3
"""The relay through faults (issue 13): three ``drain_outbox --loop`` relays on PostgreSQL, a
producer emitting events in transactions (every tenth transaction rolled back), each event
fanned out to two emails through the ``django`` provider to an SMTP server on loopback that
keeps what it receives. Each email's Message-ID is derived from its idempotency key, so a
message received twice was sent twice.

    python bench/faults.py                       every scenario
    python bench/faults.py --scenarios none,lost --events 1000

Scenarios (--scenarios, comma-separated):
  none      no fault
  sigkill   SIGKILL of a random relay every 1-3 s (the supervisor restarts it)
  lost      every relay's database connections terminated twice mid-drain
            (pg_terminate_backend: the shared server is never restarted)
  smtp      the SMTP server down for 10 s
  poison    50 poison events among the others (missing template, render error, no rule)
  sigterm   2,000 events due, one relay, SIGTERM mid-drain: time to exit, exit code, released

A supervisor restarts any relay that exits (as systemd's Restart=always would) and counts the
exits it did not cause. PostgreSQL comes from $BENCH_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/bench, created if missing); the run works in a fresh schema,
dropped at the end. Prints one table and a last JSON line. Nothing asserts: every figure is a
measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO))

from bench.run import ensure_pg_database, postgres_dsn  # noqa: E402

SCENARIOS = ("none", "sigkill", "lost", "smtp", "poison", "sigterm")
RELAY_APP_NAME = "outbox-fault-relay"
LEASE_SECONDS = 6


class Relays:
    """drain_outbox --loop processes under a supervisor that restarts those that exit."""

    def __init__(self, env: dict[str, str], count: int, log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen] = []
        self.killed: set[int] = set()  # pids this harness killed or stopped
        self.exits: list[tuple[int, int]] = []  # (pid, code) of exits it did not cause
        self.started = 0
        self.running = True
        for _ in range(count):
            self.processes.append(self.start())
        self.thread = threading.Thread(target=self.supervise, daemon=True)
        self.thread.start()

    def start(self, *extra: str) -> subprocess.Popen:
        self.started += 1
        out = open(self.log_dir / f"relay-{self.started}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "django", "drain_outbox", "--loop", "--interval", "0.2",
             "--batch-size", "100", *extra],
            cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def supervise(self) -> None:
        while self.running:
            with self.lock:
                for index, process in enumerate(self.processes):
                    code = process.poll()
                    if code is None:
                        continue
                    if process.pid not in self.killed:
                        self.exits.append((process.pid, code))
                    if self.running:
                        self.processes[index] = self.start()
            time.sleep(0.2)

    def kill_random(self) -> int:
        with self.lock:
            process = random.choice(self.processes)
            self.killed.add(process.pid)
            process.send_signal(signal.SIGKILL)
            return process.pid

    def stop(self) -> list[tuple[int, float]]:
        """SIGTERM every relay; (exit code, seconds to exit) each."""
        self.running = False
        self.thread.join()
        results = []
        for process in self.processes:
            self.killed.add(process.pid)
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            results.append((code, time.monotonic() - began))
        return results


def setup_schema(schema: str) -> None:
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    connection.close()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)

    from bench.benchapp.models import Recipient
    from django_communication.models import CommunicationSettings, MessageTemplate

    for key in ("pair_a", "pair_b"):
        MessageTemplate.objects.create(
            key=key, name=key, email_subject=f"{key} {{{{ n }}}}", email_body_text="n = {{ n }}"
        )
    MessageTemplate.objects.create(
        key="broken",
        name="Broken",
        email_subject="Broken",
        email_body_text="{% include 'no/such/file.txt' %}",
    )
    config = CommunicationSettings.get_solo()
    config.email_provider = "django"
    config.email_from_address = "shop@example.com"
    config.save()
    Recipient.objects.create(name="Guest", email="guest@example.com")


def wipe() -> None:
    from django.db import connection

    from django_communication.models import Message, MessageEvent
    from outbox.models import OutboxEvent

    with connection.cursor() as cursor:
        tables = [m._meta.db_table for m in (MessageEvent, Message, OutboxEvent)]
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


def produce(events: int, poison: int = 0) -> list:
    """Events in transactions of 10, every tenth transaction rolled back; returns the committed
    events. ``poison`` of them (spread out) cannot be sent."""
    from django.db import transaction

    from bench.benchapp.models import Recipient
    from bench.faults_settings import EVENT_TYPE
    from outbox import emit
    from outbox.models import OutboxEvent

    class Rollback(Exception):
        pass

    guest = Recipient.objects.get()
    poison_types = ["fault.missing_template", "fault.render_error", "fault.no_rule"]
    committed = []
    n = poisoned = 0
    for batch in range(events // 9 + 1):
        made = []
        try:
            with transaction.atomic():
                for _ in range(10):
                    kind = EVENT_TYPE
                    if poisoned < poison and n % (events // poison) == 0 and batch % 10 != 9:
                        kind = poison_types[poisoned % 3]
                        poisoned += 1
                    if kind == "fault.no_rule":
                        # emit() refuses a type no rule handles; such an event exists when a
                        # deploy removes its rule while it is pending: written, then renamed.
                        event = emit(EVENT_TYPE, to=guest, context={"n": n})
                        OutboxEvent.objects.filter(pk=event.pk).update(event_type=kind)
                        event.event_type = kind
                    else:
                        event = emit(kind, to=guest, context={"n": n})
                    made.append(event)
                    n += 1
                if batch % 10 == 9:
                    raise Rollback
        except Rollback:
            continue
        committed += made
        if len(committed) >= events:
            break
    return committed


def expected_ids(events: list) -> set[str]:
    from types import SimpleNamespace

    from bench.faults_settings import EVENT_TYPE, RULES
    from django_communication.providers.base import stable_message_id
    from outbox.conf import Rule

    ids = set()
    for event in events:
        if event.event_type != EVENT_TYPE:
            continue
        for rule in RULES[EVENT_TYPE]:
            key = f"outbox:{event.pk}:{Rule(**rule).key}"
            message = SimpleNamespace(idempotency_key=key, from_address="shop@example.com")
            ids.add(stable_message_id(message))
    return ids


def wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def unfinished() -> int:
    from outbox.models import OutboxEvent, OutboxStatus

    return OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count()


def held_events() -> list:
    from outbox.models import OutboxEvent, OutboxStatus

    return list(
        OutboxEvent.objects.filter(
            status=OutboxStatus.PENDING, claim_token__isnull=False
        ).values_list("pk", flat=True)
    )


def all_dispatched(ids: list) -> bool:
    from outbox.models import OutboxEvent, OutboxStatus

    return OutboxEvent.objects.filter(pk__in=ids, status=OutboxStatus.DISPATCHED).count() == len(
        ids
    )


def watch_recovery(killed_at: float, held: list, recoveries: list[float]) -> None:
    """Append how long after the kill every event held at that moment was dispatched."""
    from django.db import connection

    try:
        if held and wait_until(lambda: all_dispatched(held), 120):
            recoveries.append(time.monotonic() - killed_at)
    finally:
        connection.close()


def terminate_relay_backends() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [RELAY_APP_NAME],
        )
        return cursor.fetchone()[0]


def run_scenario(name: str, args, env: dict[str, str], smtp, log_dir: Path) -> dict:
    from outbox.models import OutboxEvent, OutboxStatus

    wipe()
    smtp.reset()
    result: dict = {"scenario": name}
    if name == "sigterm":
        return run_sigterm(args, env, smtp, log_dir)
    relays = Relays(env, 3, log_dir)
    began = time.monotonic()
    events = produce(args.events, poison=50 if name == "poison" else 0)
    wanted = len(expected_ids(events))
    recoveries: list[float] = []
    if name == "sigkill":
        watchers = []
        while unfinished():
            time.sleep(random.uniform(1, 3))  # the fault's rhythm, not a synchronisation
            if not unfinished():
                break
            relays.kill_random()
            watcher = threading.Thread(
                target=watch_recovery, args=(time.monotonic(), held_events(), recoveries)
            )
            watcher.start()
            watchers.append(watcher)
        for watcher in watchers:
            watcher.join()
        result["kills"] = len(watchers)
    elif name == "lost":
        terminated = []
        for share in (0.3, 0.65):
            wait_until(lambda share=share: len(smtp.messages) >= share * wanted, 300)
            terminated.append(terminate_relay_backends())
        result["backends_terminated"] = terminated
    elif name == "smtp":
        wait_until(lambda: len(smtp.messages) >= 0.3 * wanted, 300)
        smtp.stop()
        time.sleep(10)  # the fault's length, not a synchronisation
        smtp.start()
    finished = wait_until(lambda: unfinished() == 0, args.timeout)
    took = time.monotonic() - began
    stops = relays.stop()
    received = Counter(mail.message["Message-ID"] for mail in list(smtp.messages))
    expected = expected_ids(events)
    result.update(
        {
            "events": len(events),
            "emails_expected": len(expected),
            "finished": finished,
            "seconds": round(took, 1),
            "lost": len(expected - set(received)),
            "sent_twice": sum(count - 1 for count in received.values()),
            "relay_exits": len(relays.exits),
            "dead": OutboxEvent.objects.filter(status=OutboxStatus.DEAD).count(),
            "sigterm_exit_codes": sorted({code for code, _ in stops}),
        }
    )
    if recoveries:
        result["killed_relay_events_out_s_max"] = round(max(recoveries), 2)
        result["killed_relay_events_out_s_median"] = round(
            sorted(recoveries)[len(recoveries) // 2], 2
        )
    return result


def run_sigterm(args, env: dict[str, str], smtp, log_dir: Path) -> dict:
    from django_communication.models import Message, MessageStatus
    from outbox.models import OutboxEvent, OutboxStatus

    events = produce(2000)
    relays = Relays(env, 1, log_dir)
    relays.running = False  # no restart
    wait_until(lambda: len(smtp.messages) >= 100, 120)
    [(code, seconds)] = relays.stop()
    return {
        "scenario": "sigterm",
        "events": len(events),
        "exit_code": code,
        "exit_seconds": round(seconds, 2),
        "dispatched": OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count(),
        "released_due_now": OutboxEvent.objects.filter(
            status=OutboxStatus.PENDING, claim_token__isnull=True, attempts=0
        ).count(),
        "still_leased": OutboxEvent.objects.filter(claim_token__isnull=False).count(),
        "emails_received": len(smtp.messages),
        "messages_sent_recorded": Message.objects.filter(status=MessageStatus.SENT).count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--events", type=int, default=3000, help="committed events (default 3000)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="keep the schema and relay logs")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    import tempfile

    dsn = postgres_dsn()
    ensure_pg_database(dsn)
    schema = f"faults_{os.getpid()}_{int(time.time())}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench_faults_"))
    from tests.servers import SmtpServer

    smtp = SmtpServer()
    smtp.start()
    base = {
        **os.environ,
        "BENCH_DB": "postgres",
        "BENCH_PG_DSN": dsn,
        "BENCH_PG_SCHEMA": schema,
        "BENCH_SMTP_PORT": str(smtp.port),
        "BENCH_FAULTS_OUTBOX": json.dumps({"LEASE_SECONDS": LEASE_SECONDS}),
        "PYTHONPATH": str(REPO),
    }
    os.environ.update(base)
    relay_env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "bench.faults_settings",
        "BENCH_PG_DSN": dsn + ("&" if "?" in dsn else "?") + f"application_name={RELAY_APP_NAME}",
    }
    import django
    from django.conf import settings

    from bench import faults_settings

    settings.configure(**faults_settings.build())
    django.setup()
    results = []
    try:
        setup_schema(schema)
        for name in scenarios:
            print(f"scenario {name} ...", file=sys.stderr, flush=True)
            results.append(run_scenario(name, args, relay_env, smtp, log_dir))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        smtp.stop()
        if not args.keep:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            print(f"kept: schema {schema}, logs {log_dir}", file=sys.stderr)
    print_table(results)
    print(
        json.dumps({"bench": "outbox_faults", "lease_seconds": LEASE_SECONDS, "results": results})
    )
    return 0


def print_table(results: list[dict]) -> None:
    print("| fault | events | lost | sent twice | relay exits | dead | other |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if r["scenario"] == "sigterm":
            print(
                f"| SIGTERM, {r['events']} due | {r['events']} | - | - | - | - | exit "
                f"{r['exit_code']} in {r['exit_seconds']} s; {r['dispatched']} dispatched, "
                f"{r['released_due_now']} released, {r['still_leased']} still leased |"
            )
            continue
        other = {
            k: v
            for k, v in r.items()
            if k not in {"scenario", "events", "lost", "sent_twice", "relay_exits", "dead"}
        }
        print(
            f"| {r['scenario']} | {r['events']} | {r['lost']} | {r['sent_twice']} | "
            f"{r['relay_exits']} | {r['dead']} | {json.dumps(other)} |"
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
