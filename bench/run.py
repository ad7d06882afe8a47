#!/usr/bin/env python3
"""Benchmark (issue 6): django_communication + outbox against django-post-office 3.12.

    python bench/run.py                  both databases, every phase (about 15 minutes)
    python bench/run.py --quick          smaller sizes, for development
    python bench/run.py --db postgres --phases drain,send --profile drain

Without --db it runs ``bench/run.py --db sqlite`` and ``--db postgres`` as subprocesses (one
process per database, Django configured in-process with settings.configure) and prints each
one's tables, then one JSON line with everything. PostgreSQL comes from $BENCH_PG_DSN
(default postgresql://postgres@127.0.0.1:5432/bench; the database is created if missing) and
every run works in a fresh schema that is dropped at the end; SQLite uses a WAL file in a
temporary directory.

Phases (--phases, comma-separated; default all):
  drain     outbox.relay.drain() of N emitted events (OUTBOX["CONCURRENCY"] lanes) vs
            post_office send_queued_mail_until_done(processes=1) of N queued emails (its default
            THREADS_PER_PROCESS); exactly-once checked. --latency-ms adds a round trip per email
            to both sides' email backend
  enqueue   outbox.emit_many() of N events vs post_office mail.send_many() of N (same runs)
  send      django_communication.send() N times vs post_office mail.send(priority="now")
  producer  a business transaction (INSERT one booking, COMMIT) alone, plus one emit(), and
            plus one post_office mail.send() (queued); persistent connection and CONN_MAX_AGE=0
            (connection closed after each transaction); WAKE_ON_COMMIT with the django-q2 ORM
            broker, so the wake-up's cost is in
  backlog   drain(limit=5000) with --backlog events pending vs with 5000 pending
  memory    peak RSS growth of a subprocess draining the --backlog events
  latency   PostgreSQL: a real qcluster, --latency-n single-event transactions at
            --latency-rate per second; commit -> provider call p50/p99
Nothing asserts speed: every figure is a measurement, printed with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# `python bench/run.py` puts bench/ first on sys.path; import it as the package `bench` instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(REPO))

from bench import measure  # noqa: E402
from bench import settings as bench_settings  # noqa: E402

PHASES = ("drain", "enqueue", "send", "producer", "backlog", "memory", "latency")
QUICK = {
    "n": 500,
    "runs": 3,
    "backlog": 10_000,
    "backlog_drain": 1000,
    "producer_n": 200,
    "latency_n": 100,
}
FULL = {
    "n": 5000,
    "runs": 5,
    "backlog": 100_000,
    "backlog_drain": 5000,
    "producer_n": 1000,
    "latency_n": 500,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        help="run one database in this process (default: both, as subprocesses)",
    )
    parser.add_argument(
        "--dbs",
        default="sqlite,postgres",
        help="databases to run without --db (default sqlite,postgres)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"smaller defaults for development: {QUICK}"
    )
    parser.add_argument("-n", type=int, help="messages per drain/enqueue/send run (default 5000)")
    parser.add_argument("--runs", type=int, help="runs per figure, sides alternating (default 5)")
    parser.add_argument(
        "--backlog",
        type=int,
        help="pending events in the backlog phase and drained by the memory phase (default 100000)",
    )
    parser.add_argument(
        "--backlog-drain",
        type=int,
        help="events drained per backlog run: drain(limit=...) (default 5000)",
    )
    parser.add_argument(
        "--producer-n", type=int, help="transactions per producer variant and run (default 1000)"
    )
    parser.add_argument("--latency-n", type=int, help="measured transactions (default 500)")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=50.0,
        help="latency transactions per second (default 50)",
    )
    parser.add_argument("--warmup", type=int, default=50, help="warm-up messages (default 50)")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="our relay's OUTBOX['CONCURRENCY'] (default: the library's default)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="a round trip per message in both sides' email backend, in ms: a GIL-free wait, "
        "as an SMTP server or the SES API answers (default 0)",
    )
    parser.add_argument(
        "--memory-peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure post_office draining the backlog (default yes)",
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        choices=["drain", "send", "producer"],
        help="cProfile an extra run of ours (not in the figures); "
        "top functions go to stderr and the JSON; repeatable",
    )
    parser.add_argument("--cluster-start-timeout", type=float, default=90.0)
    parser.add_argument("--child-timeout", type=float, default=1800.0)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite dir / PG schema")
    parser.add_argument("--child", choices=["memory"], help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.phase_set = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = args.phase_set - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {PHASES}")
    if args.n < 1 or args.runs < 1 or args.backlog_drain > args.backlog:
        parser.error("need -n >= 1, --runs >= 1 and --backlog-drain <= --backlog")
    if args.latency_ms < 0:
        parser.error("need --latency-ms >= 0")
    # Read by bench/settings.py here and in every subprocess (memory child, qcluster).
    os.environ["BENCH_LATENCY_MS"] = str(args.latency_ms)
    if args.concurrency is not None:
        os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)
    return args


# ---------------------------------------------------------------------------- orchestrator


def postgres_dsn() -> str:
    return os.environ.get("BENCH_PG_DSN", bench_settings.DEFAULT_PG_DSN)


def postgres_reachable() -> bool:
    url = urlparse(postgres_dsn())
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5432), timeout=3):
            return True
    except OSError:
        return False


def orchestrate(args: argparse.Namespace, argv: list[str]) -> int:
    passthrough = strip_option(argv, "--dbs")
    results: dict[str, object] = {}
    status = 0
    for db in [d.strip() for d in args.dbs.split(",") if d.strip()]:
        if db == "postgres" and not postgres_reachable():
            print(f"# postgres: {postgres_dsn()} not reachable, skipped", flush=True)
            results[db] = {"skipped": "PostgreSQL not reachable"}
            continue
        command = [sys.executable, str(BENCH_DIR / "run.py"), "--db", db, *passthrough]
        print(f"# {' '.join(command)}", flush=True)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
        last = None
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                last = line
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
        code = process.wait()
        if code or last is None:
            status = code or 1
            results[db] = {"error": f"bench/run.py --db {db} exited {code}"}
        else:
            results[db] = json.loads(last)
    print(json.dumps({"bench": "django_communication_vs_post_office", "results": results}))
    return status


def strip_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == name:
            skip = True
            continue
        if item.startswith(name + "="):
            continue
        out.append(item)
    return out


# ---------------------------------------------------------------------------- one database


def ensure_pg_database(dsn: str) -> None:
    import psycopg

    url = urlparse(dsn)
    name = url.path.lstrip("/") or "postgres"
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def configure(env_db: str, tmpdir: str) -> str | None:
    """Set the BENCH_* environment for this database and configure Django from it."""
    schema = None
    os.environ["BENCH_DB"] = env_db
    if env_db == "postgres":
        ensure_pg_database(postgres_dsn())
        schema = f"bench_{os.getpid()}_{int(time.time())}"
        os.environ["BENCH_PG_DSN"] = postgres_dsn()
        os.environ["BENCH_PG_SCHEMA"] = schema
    else:
        os.environ["BENCH_SQLITE_PATH"] = os.path.join(tmpdir, "bench.sqlite3")
    setup_django()
    if schema:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        connection.close()
    return schema


def setup_django() -> None:
    import django
    from django.conf import settings

    settings.configure(**bench_settings.build())
    django.setup()


def db_info() -> tuple[str, dict[str, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            values = {}
            for pragma in ("journal_mode", "synchronous"):
                cursor.execute(f"PRAGMA {pragma}")
                values[pragma] = str(cursor.fetchone()[0])
            cursor.execute("select sqlite_version()")
            return f"SQLite {cursor.fetchone()[0]}", values
        cursor.execute("show server_version")
        version = cursor.fetchone()[0]
        values = {}
        names = ("synchronous_commit", "fsync", "shared_buffers", "wal_level", "max_connections")
        for name in names:
            cursor.execute(f"show {name}")
            values[name] = cursor.fetchone()[0]
        return f"PostgreSQL {version}", values


def run_database(args: argparse.Namespace) -> int:
    from bench.phases import Bench, log

    tmpdir = tempfile.mkdtemp(prefix=f"bench_{args.db}_")
    schema = configure(args.db, tmpdir)
    from django.db import connection

    started = time.monotonic()
    bench = Bench(args, args.db, tmpdir)
    try:
        db_version, db_config = db_info()
        log(f"{args.db}: {db_version}; setting up (N={args.n}, runs={args.runs})")
        bench.setup()
        bench.warmup()
        wanted = args.phase_set
        steps = [
            ({"drain", "enqueue"}, bench.phase_queue),
            ({"send"}, bench.phase_send),
            ({"producer"}, bench.phase_producer),
            ({"backlog"}, bench.phase_backlog),
            ({"memory"}, bench.phase_memory),
            ({"latency"}, bench.phase_latency),
        ]
        for names, step in steps:
            if names & wanted:
                log(f"phase {step.__name__.removeprefix('phase_')}")
                step()
    finally:
        if schema and not args.keep:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except Exception as exc:
                print(f"warning: could not drop schema {schema}: {exc}", file=sys.stderr)
        connection.close()
        if args.keep:
            print(f"kept: {schema or tmpdir}", file=sys.stderr)
        else:
            shutil.rmtree(tmpdir, ignore_errors=True)

    results = bench.summarize()
    import django

    from bench import workload

    report = {
        "bench": "django_communication_vs_post_office",
        "db": args.db,
        "config": {
            "n": args.n,
            "runs": args.runs,
            "phases": sorted(wanted),
            "backlog": args.backlog,
            "backlog_drain": args.backlog_drain,
            "producer_n": args.producer_n,
            "latency_n": args.latency_n,
            "latency_rate": args.latency_rate,
            "latency_ms": args.latency_ms,
            "concurrency": outbox_concurrency(),
            "warmup": args.warmup,
            "quick": args.quick,
            "template_source": workload.SOURCE,
            "outbox": bench_settings.build()["OUTBOX"],
            "q_cluster": bench_settings.build()["Q_CLUSTER"],
            "post_office": post_office_config(),
        },
        "machine": measure.machine(),
        "versions": {
            "python": platform.python_version(),
            "django": django.get_version(),
            "django_communication": measure.dist("django-communication"),
            "django_communication_git": measure.git_revision(REPO),
            "post_office": measure.dist("django-post-office"),
            "django_q2": measure.dist("django-q2"),
            "psycopg": measure.dist("psycopg") if args.db == "postgres" else None,
            "db": db_version,
        },
        "db_config": db_config,
        "results": results,
        "notes": bench.notes,
        "errors": bench.errors,
        "profiles": bench.profiles,
        "total_seconds": time.monotonic() - started,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for text in bench.profile_texts:
        print(text, file=sys.stderr)
    print(render(report), flush=True)
    print(json.dumps(report, default=str), flush=True)
    return 1 if bench.errors else 0


def outbox_concurrency() -> int:
    from outbox.conf import outbox_settings

    return outbox_settings.concurrency


def post_office_config() -> dict[str, object]:
    from post_office.settings import get_batch_size, get_log_level, get_threads_per_process

    return {
        "BATCH_SIZE": get_batch_size(),
        "THREADS_PER_PROCESS": get_threads_per_process(),
        "LOG_LEVEL": get_log_level(),
        "drain_api": "send_queued_mail_until_done(processes=1)",
    }


# ---------------------------------------------------------------------------- report


def render(report: dict) -> str:
    r = report["results"]
    db = report["db"]
    out = [
        "",
        f"==== {db}: {report['versions']['db']} ====",
        "machine: {cpus} cpus, {cpu}, {mem}, {platform}".format(
            cpus=report["machine"]["cpus"],
            cpu=report["machine"].get("cpu_model", report["machine"]["processor"]),
            mem=report["machine"].get("mem_total", "?"),
            platform=report["machine"]["platform"],
        ),
        "versions: Python {python}, Django {django}, django-communication {django_communication}"
        " ({django_communication_git}), django-post-office {post_office}, django-q2 {django_q2}"
        ", psycopg {psycopg}".format(**report["versions"]),
        f"db config: {report['db_config']}",
        "config: N={n}, runs={runs}, backlog={backlog}, backlog drain={backlog_drain}, "
        "producer tx={producer_n}, latency tx={latency_n} at {latency_rate}/s, "
        "round trip {latency_ms:g} ms per email (both sides), our lanes {concurrency}, "
        "post_office threads {threads}".format(
            threads=report["config"]["post_office"].get("THREADS_PER_PROCESS"),
            **report["config"],
        ),
        "",
    ]

    def pick(phase: str, side: str, key: str):
        return (r.get(phase, {}).get(side) or {}).get(key)

    def both(phase: str, key: str):
        return pick(phase, "ours", key), pick(phase, "post_office", key)

    rows = []
    for phase, label in (("enqueue", "1 enqueue"), ("drain", "2 drain"), ("send", "3 send")):
        if phase in r:
            rows.append((f"{label}: throughput", "emails/s", *both(phase, "emails_per_s")))
            rows.append((f"{label}: statements", "per email", *both(phase, "queries_per_item")))
            rows.append((f"{label}: time in execute", "s", *both(phase, "db_execute_seconds")))
            rows.append((f"{label}: db connects", "per run", *both(phase, "db_connects")))
    if "backlog flat" in r or "backlog loaded" in r:
        flat = report["config"]["backlog_drain"]
        rows.append((f"5 drain, {flat} pending", "emails/s", *both("backlog flat", "emails_per_s")))
        rows.append(
            (
                f"5 drain first {flat} of {report['config']['backlog']}",
                "emails/s",
                *both("backlog loaded", "emails_per_s"),
            )
        )
        rows.append(("5 backlog/flat rate", "ratio", *both("backlog ratio", "rate_ratio")))
    if "memory" in r:
        rows.append(("6 peak RSS growth, backlog drain", "MiB", *both("memory", "growth_mib")))
        rows.append(("6 backlog drain (subprocess)", "emails/s", *both("memory", "emails_per_s")))
    if rows:
        out.append(measure.table(rows, f"{db}: ours vs post_office (median [min-max] of runs)"))
        out.append("")

    producer = []
    for mode, title in (("persistent", "persistent conn"), ("conn_max_age_0", "CONN_MAX_AGE=0")):
        phase = r.get(f"producer {mode}")
        if not phase:
            continue
        for variant, label in (
            ("business", "business tx only"),
            ("emit", "+ outbox.emit()"),
            ("post_office", "+ post_office mail.send()"),
        ):
            stats = phase.get(variant)
            if not stats:
                continue
            producer.append(
                (
                    f"{title}: {label}",
                    measure.cell(stats.get("ms_per_tx")),
                    measure.cell(stats.get("ratio_to_business")),
                    measure.fmt((stats.get("statements_per_tx") or {}).get("median")),
                    measure.fmt((stats.get("connects_per_tx") or {}).get("median")),
                    measure.fmt((stats.get("drain_tasks_queued") or {}).get("median")),
                )
            )
    if producer:
        header = (
            "4 producer cost",
            "ms/tx median [min-max]",
            "ratio to business tx",
            "statements/tx",
            "connects/tx",
            "drain tasks queued",
        )
        out.append(plain_table(header, producer))
        out.append("")

    latency = (r.get("latency") or {}).get("ours")
    if latency:
        runs = latency["runs"][0]
        out.append(
            "7 latency commit -> provider call ({delivered}/{transactions} tx at {rate_per_s}/s"
            ", qcluster ORM broker): p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms, "
            "duplicates {duplicate_provider_calls}".format(
                p50=measure.fmt(runs.get("p50_ms")),
                p90=measure.fmt(runs.get("p90_ms")),
                p99=measure.fmt(runs.get("p99_ms")),
                max=measure.fmt(runs.get("max_ms")),
                **runs,
            )
        )
    for key, value in report["notes"].items():
        if key != "rendered_samples":
            out.append(f"note {key}: {value}")
    samples = report["notes"].get("rendered_samples", {})
    if len(samples) == 2:
        same = samples["ours"] == samples["post_office"]
        out.append(f"rendered text identical on both sides: {same}")
        if not same:
            for side, sample in samples.items():
                out.append(f"  {side}: {sample!r}")
    for key, detail in report["errors"].items():
        out.append(f"ERROR {key}: {detail.splitlines()[-1]}")
    out.append(f"total {report['total_seconds']:.0f}s")
    return "\n".join(out)


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, *rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = []
    for number, line in enumerate(lines):
        text.append("  ".join(str(v).ljust(width) for v, width in zip(line, widths, strict=True)))
        if number == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


# ---------------------------------------------------------------------------- memory child


def rss_now() -> int | None:
    try:
        import psutil
    except ImportError:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None
    return psutil.Process().memory_info().rss


class RssSampler(threading.Thread):
    """Samples this process's RSS every 20 ms and keeps the highest value (cheap, unlike
    tracemalloc, and catches a peak that ru_maxrss would hide behind an earlier one)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, rss_now() or 0)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def child_memory(args: argparse.Namespace) -> int:
    """Drain the whole backlog in this fresh process; print RSS figures as one JSON line."""
    setup_django()
    from django.db import connection
    from post_office import mail
    from post_office.models import STATUS, Email

    import django_communication.sending  # noqa: F401  (imported before the baseline)
    from outbox.relay import drain

    connection.ensure_connection()
    rss_before = rss_now()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    if args.side == "ours":
        sent = drain().dispatched
    else:
        lockfile = os.path.join(tempfile.gettempdir(), f"bench_memory_{os.getpid()}")
        mail.send_queued_mail_until_done(lockfile=lockfile, processes=1)
        sent = Email.objects.filter(status=STATUS.sent).count()
    seconds = time.perf_counter() - started
    sampler.stop()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = max(sampler.peak, rss_now() or 0)
    print(
        json.dumps(
            {
                "side": args.side,
                "sent": sent,
                "seconds": seconds,
                "emails_per_s": sent / seconds,
                "rss_before_mib": rss_before / 2**20 if rss_before else None,
                "maxrss_before_mib": maxrss_before / 1024,
                "maxrss_after_mib": maxrss_after / 1024,
                "peak_rss_sampled_mib": peak / 2**20,
                "growth_mib": (peak - rss_before) / 2**20 if rss_before else None,
                "maxrss_growth_mib": (maxrss_after - maxrss_before) / 1024,
                "rss_source": "growth: peak RSS sampled every 20 ms (psutil or /proc/self/statm)"
                " minus RSS before the drain; maxrss: resource.getrusage ru_maxrss",
                "email_backend": "dummy (locmem would keep every message in mail.outbox)",
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child == "memory":
        return child_memory(args)
    if args.db:
        return run_database(args)
    return orchestrate(args, argv)


if __name__ == "__main__":
    sys.exit(main())
