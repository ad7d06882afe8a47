"""The benchmark's phases for one database, run in one process (see run.py for the CLI).

Every phase runs OUR side (django_communication + outbox) and post_office's side on the same
workload, alternating which goes first from run to run. Nothing here asserts speed; the checks
only make sure a figure measures what it says (exactly-once delivery, the right row counts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import measure
from bench import workload as w
from bench.measure import Phase, summary
from bench.settings import EVENT_TYPE, TEMPLATE_KEY

REPO = Path(__file__).resolve().parent.parent
OURS, THEIRS = "ours", "post_office"
BACKLOG_CHUNK = 5000


class BenchError(Exception):
    """A check failed or a phase could not run: reported, never hidden."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args, db: str, tmpdir: str) -> None:
        self.args = args
        self.db = db
        self.tmpdir = tmpdir
        self.n = args.n
        # phase -> side -> list of per-run figure dicts
        self.records: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.errors: dict[str, str] = {}
        self.notes: dict[str, Any] = {}
        self.profiles: dict[str, Any] = {}
        self.profile_texts: list[str] = []
        self.lockfile = os.path.join(tmpdir, "post_office_lock")
        self._context_cache: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ setup and helpers

    def setup(self) -> None:
        from django.core.management import call_command
        from post_office.models import EmailTemplate

        from bench.benchapp.models import Recipient
        from django_communication.models import MessageTemplate

        if TEMPLATE_KEY != w.TEMPLATE_NAME:
            raise BenchError(f"template key {TEMPLATE_KEY!r} != peer's {w.TEMPLATE_NAME!r}")
        call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
        MessageTemplate.objects.create(
            key=TEMPLATE_KEY,
            name="Booking confirmation",
            message_type="transactional",
            email_subject=w.TEMPLATE_SUBJECT,
            email_body_text=w.TEMPLATE_TEXT,
            email_body_html=w.TEMPLATE_HTML,
        )
        EmailTemplate.objects.create(
            name=w.TEMPLATE_NAME,
            subject=w.TEMPLATE_SUBJECT,
            content=w.TEMPLATE_TEXT,
            html_content=w.TEMPLATE_HTML,
        )
        self.set_provider("django")
        Recipient.objects.bulk_create(
            [Recipient(name=f"Guest {i}", email=w.recipient(i)) for i in range(self.n)],
            batch_size=1000,
        )
        self.recipients = list(Recipient.objects.order_by("pk"))
        self.contexts = w.contexts(self.n)

    def set_provider(self, name: str) -> None:
        from django_communication.models import CommunicationSettings

        config = CommunicationSettings.get_solo()
        config.email_provider = name
        config.email_from_address = w.SENDER
        config.save()  # clears this process's settings and provider caches (apps.py)

    def ours_models(self) -> list:
        from django_communication.models import Message, MessageEvent
        from outbox.models import OutboxEvent

        return [MessageEvent, Message, OutboxEvent]

    def theirs_models(self) -> list:
        from post_office.models import Email, Log

        return [Log, Email.attachments.through, Email]

    def wipe(self, models: list) -> None:
        from django.db import connection

        tables = [connection.ops.quote_name(model._meta.db_table) for model in models]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")

    def analyze(self, models: list) -> None:
        """Fresh planner statistics after a bulk load, the same for both sides."""
        from django.db import connection

        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")

    def context_slice(self, prefix: str, offset: int, count: int) -> list[dict[str, Any]]:
        """contexts(offset + count, prefix)[offset:], generated once and kept."""
        if not prefix and offset + count <= self.n:
            return self.contexts[offset : offset + count]
        cache = self._context_cache.setdefault(prefix, [])
        if len(cache) < offset + count:
            cache[:] = w.contexts(max(offset + count, 2 * len(cache)), prefix)
        return cache[offset : offset + count]

    def event_items(self, count: int, prefix: str = "", offset: int = 0) -> list[dict[str, Any]]:
        contexts = self.context_slice(prefix, offset, count)
        return [
            {
                "event_type": EVENT_TYPE,
                "to": self.recipients[(offset + i) % self.n],
                "context": context,
            }
            for i, context in enumerate(contexts)
        ]

    def po_kwargs(self, count: int, prefix: str = "", offset: int = 0) -> list[dict[str, Any]]:
        contexts = self.context_slice(prefix, offset, count)
        return [
            {
                "recipients": [w.recipient((offset + i) % self.n)],
                "sender": w.SENDER,
                "template": w.TEMPLATE_NAME,
                "context": context,
                "priority": "medium",
            }
            for i, context in enumerate(contexts)
        ]

    def po_drain_all(self) -> None:
        from post_office import mail

        mail.send_queued_mail_until_done(lockfile=self.lockfile, processes=1)

    def record(self, phase: str, side: str, figures: dict[str, Any]) -> None:
        self.records[phase][side].append(figures)

    def guarded(self, phase: str, side: str, action: Callable[[], None]) -> bool:
        """Run one side of one run; a failure is reported and stops that side of the phase."""
        key = f"{phase}:{side}"
        if key in self.errors:
            return False
        try:
            action()
            return True
        except Exception as exc:
            detail = "".join(traceback.format_exception(exc)).rstrip()
            self.errors[key] = detail
            log(f"ERROR in {key}:\n{detail}")
            return False

    def alternate(self, phase: str, ours: Callable[[int], None], theirs: Callable[[int], None]):
        for run in range(self.args.runs):
            sides = [(OURS, ours), (THEIRS, theirs)]
            if run % 2:
                sides.reverse()
            for side, action in sides:
                self.guarded(phase, side, lambda action=action, run=run: action(run))
            log(f"{phase}: run {run + 1}/{self.args.runs} done")

    # ------------------------------------------------------------------ warm-up

    def warmup(self) -> None:
        """First-use costs (template compilation, SQL compiler, caches) out of the timings."""
        from django.core import mail as django_mail
        from django.db import connection, transaction
        from post_office import mail

        from bench.benchapp.models import Booking
        from django_communication import send
        from outbox import emit, emit_many
        from outbox.relay import drain

        count = self.args.warmup
        if not count:
            return
        django_mail.outbox = []
        self.guarded("warmup", OURS, lambda: (emit_many(self.event_items(count)), drain()))
        for i in range(10):
            self.guarded(
                "warmup",
                OURS,
                lambda i=i: send(
                    to=self.recipients[i], template_key=TEMPLATE_KEY, context=self.contexts[i]
                ),
            )
        for i in range(10):
            with transaction.atomic():
                booking = Booking.objects.create(ref=f"W{i}", name="w", email=w.recipient(i))
                emit(EVENT_TYPE, to=booking, context=self.contexts[i])
                mail.send(**self.po_kwargs(1)[0])
            connection.close()
        mail.send_many(self.po_kwargs(count, prefix="w"))
        self.po_drain_all()
        for kwargs in self.po_kwargs(10, prefix="w"):
            mail.send(**{**kwargs, "priority": "now"})
        self.wipe([*self.ours_models(), *self.theirs_models(), Booking])
        django_mail.outbox = []

    # ------------------------------------------------------------------ 1+2: enqueue and drain

    def check_outbox(self, expected: int, side: str) -> dict[str, Any]:
        from django.core import mail as django_mail

        outbox = django_mail.outbox
        distinct = len({message.to[0] for message in outbox})
        if len(outbox) != expected or distinct != expected:
            raise BenchError(
                f"{side}: mail.outbox has {len(outbox)} messages to {distinct} distinct "
                f"recipients, expected {expected} to {expected} (exactly once each)"
            )
        first = min(outbox, key=lambda message: message.to[0])
        if not first.subject.startswith("Booking BK") or not first.alternatives:
            raise BenchError(f"{side}: unexpected message {first.subject!r} {first.alternatives}")
        return {"outbox": len(outbox), "distinct_recipients": distinct}

    def sample(self, side: str) -> None:
        """The rendered message to recipient 0, to compare both sides' text."""
        from django.core import mail as django_mail

        for message in django_mail.outbox:
            if message.to[0] == w.recipient(0):
                html = message.alternatives[0][0] if message.alternatives else ""
                self.notes.setdefault("rendered_samples", {})[side] = {
                    "subject": message.subject,
                    "body": message.body,
                    "html": html,
                    "from": message.from_email,
                }
                return

    def ours_queue(self, run: int, profile: bool = False) -> None:
        from django.core import mail as django_mail

        from django_communication.models import Message, MessageStatus
        from outbox import emit_many
        from outbox.models import OutboxEvent, OutboxStatus
        from outbox.relay import drain

        n = self.n
        self.wipe(self.ours_models())
        django_mail.outbox = []
        items = self.event_items(n)
        with Phase("ours enqueue") as enqueue:
            written = emit_many(items)
        pending = OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count()
        if len(written) != n or pending != n:
            raise BenchError(f"emit_many wrote {len(written)}, {pending} pending; expected {n}")
        with Phase("ours drain", profile) as phase:
            result = drain()
        statuses = dict(OutboxEvent.objects.values_list("status").annotate(**_count()).order_by())
        sent = Message.objects.filter(status=MessageStatus.SENT).count()
        messages = Message.objects.count()
        if result.dispatched != n or statuses.get(OutboxStatus.DISPATCHED) != n:
            raise BenchError(f"drain(): {result}; event statuses {statuses}; expected {n}")
        if sent != n or messages != n:
            raise BenchError(f"{messages} Message rows, {sent} sent; expected {n} and {n}")
        checks = self.check_outbox(n, OURS)
        if profile:
            self.keep_profile("drain (ours)", phase)
            return
        self.sample(OURS)
        self.record("enqueue", OURS, enqueue.figures(n, "emails"))
        self.record("drain", OURS, {**phase.figures(n, "emails"), **checks, "summary": str(result)})

    def theirs_queue(self, run: int) -> None:
        from django.core import mail as django_mail
        from post_office import mail
        from post_office.models import STATUS, Email, Log

        n = self.n
        self.wipe(self.theirs_models())
        django_mail.outbox = []
        kwargs = self.po_kwargs(n)
        with Phase("post_office enqueue") as enqueue:
            emails = mail.send_many(kwargs)
        queued = Email.objects.filter(status=STATUS.queued).count()
        if len(emails) != n or queued != n:
            raise BenchError(f"send_many returned {len(emails)}, {queued} queued; expected {n}")
        del emails
        with Phase("post_office drain") as phase:
            self.po_drain_all()
        sent = Email.objects.filter(status=STATUS.sent).count()
        not_sent = Email.objects.exclude(status=STATUS.sent).count()
        if sent != n or not_sent:
            raise BenchError(f"post_office: {sent} sent, {not_sent} not sent; expected {n}")
        checks = self.check_outbox(n, THEIRS)
        self.sample(THEIRS)
        self.record("enqueue", THEIRS, enqueue.figures(n, "emails"))
        self.record(
            "drain",
            THEIRS,
            {**phase.figures(n, "emails"), **checks, "log_rows": Log.objects.count()},
        )

    def keep_profile(self, title: str, phase: Phase) -> None:
        assert phase.stats is not None
        self.profile_texts.append(measure.profile_text(phase.stats, title))
        self.profiles[title] = {
            "seconds": phase.seconds,
            "queries": phase.queries.count,
            "top_cumulative": measure.profile_rows(phase.stats, "cumulative", 25),
            "top_own": measure.profile_rows(phase.stats, "tottime", 20),
        }

    def phase_queue(self) -> None:
        self.alternate("enqueue+drain", self.ours_queue, self.theirs_queue)
        if "drain" in self.args.profile:
            log("profiling our drain (an extra run, not in the figures)")
            self.guarded("profile", OURS, lambda: self.ours_queue(-1, profile=True))

    # ------------------------------------------------------------------ 3: direct send

    def ours_send(self, run: int, profile: bool = False) -> None:
        from django.core import mail as django_mail

        from django_communication import send
        from django_communication.models import Message, MessageStatus

        n = self.n
        self.wipe(self.ours_models())
        django_mail.outbox = []
        pairs = list(zip(self.recipients, self.contexts, strict=True))
        with Phase("ours send", profile) as phase:
            for to, context in pairs:
                send(to=to, template_key=TEMPLATE_KEY, context=context)
        sent = Message.objects.filter(status=MessageStatus.SENT).count()
        if sent != n:
            raise BenchError(f"{sent} Message rows sent; expected {n}")
        checks = self.check_outbox(n, OURS)
        if profile:
            self.keep_profile("send (ours)", phase)
            return
        self.record("send", OURS, {**phase.figures(n, "emails"), **checks})

    def theirs_send(self, run: int) -> None:
        from django.core import mail as django_mail
        from post_office import mail
        from post_office.models import STATUS, Email

        n = self.n
        self.wipe(self.theirs_models())
        django_mail.outbox = []
        kwargs = [{**item, "priority": "now"} for item in self.po_kwargs(n)]
        with Phase("post_office send") as phase:
            for item in kwargs:
                mail.send(**item)
        sent = Email.objects.filter(status=STATUS.sent).count()
        if sent != n:
            raise BenchError(f"post_office: {sent} emails sent; expected {n}")
        checks = self.check_outbox(n, THEIRS)
        self.record("send", THEIRS, {**phase.figures(n, "emails"), **checks})

    def phase_send(self) -> None:
        self.alternate("send", self.ours_send, self.theirs_send)
        if "send" in self.args.profile:
            self.guarded("profile", OURS, lambda: self.ours_send(-1, profile=True))

    # ------------------------------------------------------------------ 4: producer cost

    PRODUCER_VARIANTS = ("business", "emit", "post_office")

    def producer_once(
        self, variant: str, persistent: bool, profile: bool = False
    ) -> dict[str, Any]:
        from django.db import connection, transaction
        from django_q.models import OrmQ
        from post_office import mail

        from bench.benchapp.models import Booking
        from outbox import emit

        count = self.args.producer_n
        self.wipe([Booking, *self.ours_models(), *self.theirs_models()])
        time.sleep(0.25)  # let a pending wake-up timer of the previous variant fire
        tasks_before = OrmQ.objects.count()
        connection.close()
        # Persistent: CONN_MAX_AGE=None, so close_old_connections() (called by django-q2's ORM
        # broker when it queues the wake-up outside a transaction) keeps the connection.
        # Otherwise Django's default 0, and the "request" closes the connection after each
        # transaction.
        connection.settings_dict["CONN_MAX_AGE"] = None if persistent else 0
        contexts = [self.contexts[i % self.n] for i in range(count)]
        with Phase(f"producer {variant}", profile) as phase:
            for i, context in enumerate(contexts):
                with transaction.atomic():
                    booking = Booking.objects.create(
                        ref=context["ref"], name=context["name"], email=w.recipient(i)
                    )
                    if variant == "emit":
                        emit(EVENT_TYPE, to=booking, context=context)
                    elif variant == "post_office":
                        mail.send(
                            recipients=[booking.email],
                            sender=w.SENDER,
                            template=w.TEMPLATE_NAME,
                            context=context,
                            priority="medium",
                        )
                if not persistent:
                    connection.close()  # CONN_MAX_AGE=0: the request ends, the connection goes
        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = 0
        time.sleep(0.25)  # the trailing wake-up, if any, lands before counting
        figures = phase.figures(count, "tx")
        figures["ms_per_tx"] = 1000 * phase.seconds / count
        figures["statements_per_tx"] = phase.queries.count / count
        figures["connects_per_tx"] = phase.connects / count
        figures["drain_tasks_queued"] = OrmQ.objects.count() - tasks_before
        if profile:
            mode = "persistent" if persistent else "CONN_MAX_AGE=0"
            self.keep_profile(f"producer + emit() ({mode}, {count} tx)", phase)
        return figures

    def phase_producer(self) -> None:
        for run in range(self.args.runs):
            for persistent in (True, False):
                mode = "persistent" if persistent else "conn_max_age_0"
                variants = list(self.PRODUCER_VARIANTS)
                shift = run % len(variants)
                variants = variants[shift:] + variants[:shift]
                results = {}
                for variant in variants:
                    side = THEIRS if variant == "post_office" else OURS

                    def action(variant=variant, persistent=persistent, results=results):
                        results[variant] = self.producer_once(variant, persistent)

                    self.guarded(f"producer {mode} {variant}", side, action)
                base = results.get("business")
                for variant, figures in results.items():
                    if base and variant != "business":
                        figures["ratio_to_business"] = figures["seconds"] / base["seconds"]
                    self.record(f"producer {mode}", variant, figures)
            log(f"producer: run {run + 1}/{self.args.runs} done")
        if "producer" in self.args.profile:
            self.guarded("profile", OURS, lambda: self.producer_once("emit", True, profile=True))

    # ------------------------------------------------------------------ 5: flat with backlog

    def ours_pending(self) -> int:
        from outbox.models import OutboxEvent, OutboxStatus

        return OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count()

    def theirs_pending(self) -> int:
        from post_office.models import STATUS, Email

        return Email.objects.filter(status__in=[STATUS.queued, STATUS.requeued]).count()

    def ours_fill(self, target: int) -> float:
        """Delete sent work, then top the pending events up to ``target``; returns seconds."""
        from django_communication.models import Message
        from outbox import emit_many
        from outbox.models import OutboxEvent, OutboxStatus

        Message.objects.all()._raw_delete(Message.objects.db)
        OutboxEvent.objects.exclude(status=OutboxStatus.PENDING)._raw_delete(OutboxEvent.objects.db)
        started = time.perf_counter()
        missing = target - self.ours_pending()
        offset = self.filled = getattr(self, "filled", 0)
        while missing > 0:
            chunk = min(BACKLOG_CHUNK, missing)
            emit_many(self.event_items(chunk, prefix="b", offset=offset))
            offset += chunk
            missing -= chunk
        self.filled = offset
        return time.perf_counter() - started

    def theirs_fill(self, target: int) -> float:
        from post_office import mail
        from post_office.models import STATUS, Email, Log

        Log.objects.all()._raw_delete(Log.objects.db)
        Email.objects.filter(status=STATUS.sent)._raw_delete(Email.objects.db)
        started = time.perf_counter()
        missing = target - self.theirs_pending()
        offset = self.po_filled = getattr(self, "po_filled", 0)
        while missing > 0:
            chunk = min(BACKLOG_CHUNK, missing)
            mail.send_many(self.po_kwargs(chunk, prefix="b", offset=offset))
            offset += chunk
            missing -= chunk
        self.po_filled = offset
        return time.perf_counter() - started

    def ours_drain_limit(self, label: str, pending: int) -> dict[str, Any]:
        from django.core import mail as django_mail

        from outbox.relay import drain

        limit = self.args.backlog_drain
        self.analyze(self.ours_models())
        django_mail.outbox = []
        with Phase(f"ours drain {label}") as phase:
            result = drain(limit=limit)
        if result.dispatched != limit or len(django_mail.outbox) != limit:
            raise BenchError(
                f"drain(limit={limit}) with {pending} pending: {result}, "
                f"{len(django_mail.outbox)} in mail.outbox"
            )
        django_mail.outbox = []
        return {**phase.figures(limit, "emails"), "pending_before": pending}

    def theirs_drain_limit(self, label: str, pending: int) -> dict[str, Any]:
        """post_office has no limit: send_queued() batch by batch, closing the connection after
        each as send_queued_mail_until_done() does, until ``limit`` were sent."""
        from django.core import mail as django_mail
        from django.db import connection
        from post_office import mail
        from post_office.settings import get_batch_size

        limit = self.args.backlog_drain
        self.analyze(self.theirs_models())
        django_mail.outbox = []
        batches = -(-limit // get_batch_size())
        with Phase(f"post_office drain {label}") as phase:
            sent = 0
            for _ in range(batches):
                sent += mail.send_queued(processes=1)[0]
                connection.close()
        if sent != limit or len(django_mail.outbox) != limit:
            raise BenchError(
                f"post_office send_queued x{batches} with {pending} queued: sent {sent}, "
                f"{len(django_mail.outbox)} in mail.outbox, expected {limit}"
            )
        django_mail.outbox = []
        return {**phase.figures(limit, "emails"), "pending_before": pending}

    def phase_backlog(self) -> None:
        backlog, limit = self.args.backlog, self.args.backlog_drain
        sides = {
            OURS: (self.ours_models, self.ours_fill, self.ours_pending, self.ours_drain_limit),
            THEIRS: (
                self.theirs_models,
                self.theirs_fill,
                self.theirs_pending,
                self.theirs_drain_limit,
            ),
        }
        for side, (models, fill, pending, drain_limit) in sides.items():

            def flat(models=models, fill=fill, pending=pending, drain_limit=drain_limit, side=side):
                for run in range(self.args.runs):
                    self.wipe(models())
                    fill(limit)
                    self.record("backlog flat", side, drain_limit("flat", pending()))
                    log(f"backlog ({side}): flat run {run + 1}/{self.args.runs} done")

            def loaded(
                models=models, fill=fill, pending=pending, drain_limit=drain_limit, side=side
            ):
                self.wipe(models())
                seconds = fill(backlog)
                self.notes.setdefault("backlog_build", {})[side] = {
                    "rows": backlog,
                    "seconds": seconds,
                    "rows_per_s": backlog / seconds,
                }
                log(f"backlog ({side}): {backlog} pending in {seconds:.1f}s")
                for run in range(self.args.runs):
                    if run:
                        fill(backlog)
                    self.record("backlog loaded", side, drain_limit("backlog", pending()))
                    log(f"backlog ({side}): loaded run {run + 1}/{self.args.runs} done")

            self.guarded("backlog flat", side, flat)
            self.guarded("backlog loaded", side, loaded)
            flat_runs = self.records["backlog flat"][side]
            loaded_runs = self.records["backlog loaded"][side]
            for a, b in zip(flat_runs, loaded_runs, strict=False):
                self.record(
                    "backlog ratio", side, {"rate_ratio": b["emails_per_s"] / a["emails_per_s"]}
                )

    # ------------------------------------------------------------------ 6: memory

    def phase_memory(self) -> None:
        backlog = self.args.backlog
        env = {**os.environ, "BENCH_EMAIL_BACKEND": "dummy"}
        for side, models, fill in (
            (OURS, self.ours_models, self.ours_fill),
            (THEIRS, self.theirs_models, self.theirs_fill),
        ):
            if side == THEIRS and not self.args.memory_peer:
                continue

            def action(side=side, models=models, fill=fill):
                fill(backlog)
                from django.db import connection

                connection.close()
                log(f"memory ({side}): draining {backlog} in a subprocess")
                command = [
                    sys.executable,
                    str(REPO / "bench" / "run.py"),
                    "--child",
                    "memory",
                    "--side",
                    side,
                ]
                timeout = self.args.child_timeout
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
                )
                if done.returncode:
                    raise BenchError(f"memory child exited {done.returncode}:\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                if result["sent"] != backlog:
                    raise BenchError(f"memory child sent {result['sent']} of {backlog}: {result}")
                self.record("memory", side, result)
                self.wipe(models())

            self.guarded("memory", side, action)

    # ------------------------------------------------------------------ 7: latency

    def phase_latency(self) -> None:
        if self.db != "postgres":
            self.notes["latency"] = "skipped: the latency phase runs on PostgreSQL only"
            return
        self.guarded("latency", OURS, self.latency)

    def latency(self) -> None:
        from django.db import connection, transaction
        from django_q.models import OrmQ

        from bench.benchapp.models import Booking
        from outbox import emit

        count, rate = self.args.latency_n, self.args.latency_rate
        self.wipe([*self.ours_models(), Booking, OrmQ])
        self.set_provider("bench-latency")
        latency_file = os.path.join(self.tmpdir, "latency.tsv")
        Path(latency_file).write_text("")
        os.environ["BENCH_LATENCY_FILE"] = latency_file
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        cluster_log = os.path.join(self.tmpdir, "qcluster.log")
        connection.close()
        commits: dict[str, float] = {}

        def one(seq: int, ref: str) -> str:
            stamp: dict[str, float] = {}
            with transaction.atomic():
                # Registered first, so it runs right after COMMIT, before emit()'s wake-up.
                transaction.on_commit(lambda: stamp.__setitem__("t", time.time()))
                booking = Booking.objects.create(
                    ref=ref, name=f"Guest {seq}", email=w.recipient(seq)
                )
                context = {**self.contexts[seq % self.n], "ref": ref, "emitted_at": time.time()}
                event = emit(EVENT_TYPE, to=booking, context=context)
            commits[str(event.pk)] = stamp["t"]
            return str(event.pk)

        def calls() -> dict[str, list[float]]:
            seen: dict[str, list[float]] = defaultdict(list)
            for line in Path(latency_file).read_text().splitlines():
                key, called, _pid = line.split("\t")
                if key.startswith("outbox:"):
                    seen[key.split(":")[1]].append(float(called))
            return seen

        def wait_for(pks: list[str], timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                seen = calls()
                if all(pk in seen for pk in pks):
                    return True
                time.sleep(0.05)
            return False

        with open(cluster_log, "w") as log_handle:
            cluster = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                env=env,
                cwd=REPO,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            started = time.monotonic()
            probe = [one(i, f"PROBE{i}") for i in range(3)]
            if not wait_for(probe, self.args.cluster_start_timeout):
                raise BenchError(
                    f"qcluster did not deliver the probe events within "
                    f"{self.args.cluster_start_timeout}s; log:\n{tail(cluster_log)}"
                )
            self.notes["latency_cluster_ready_seconds"] = time.monotonic() - started
            for i in range(5):  # the workers' first drains (imports, caches) out of the figures
                probe.append(one(i, f"WARM{i}"))
                time.sleep(0.3)
            wait_for(probe, 30)
            measured: list[str] = []
            begin = time.perf_counter()
            for seq in range(count):
                delay = begin + seq / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                measured.append(one(seq, f"LAT{seq:07d}"))
                connection.close()  # each transaction is its own request
            complete = wait_for(measured, max(30.0, 10 * count / rate))
        finally:
            stop(cluster)
            self.set_provider("django")
            os.environ.pop("BENCH_LATENCY_FILE", None)
        seen = calls()
        deltas = [1000 * (seen[pk][0] - commits[pk]) for pk in measured if pk in seen]
        duplicates = sum(1 for pk in measured if len(seen.get(pk, [])) > 1)
        missing = [pk for pk in measured if pk not in seen]
        figures: dict[str, Any] = {
            "transactions": count,
            "rate_per_s": rate,
            "delivered": len(deltas),
            "missing": len(missing),
            "duplicate_provider_calls": duplicates,
            "complete": complete,
        }
        if deltas:
            figures.update(
                {
                    "p50_ms": measure.percentile(deltas, 0.50),
                    "p90_ms": measure.percentile(deltas, 0.90),
                    "p99_ms": measure.percentile(deltas, 0.99),
                    "max_ms": max(deltas),
                    "min_ms": min(deltas),
                    "mean_ms": sum(deltas) / len(deltas),
                }
            )
        self.record("latency", OURS, figures)
        if missing or duplicates:
            raise BenchError(
                f"latency: {len(missing)} of {count} events never reached the provider, "
                f"{duplicates} reached it twice; figures {figures}; cluster log:\n"
                f"{tail(cluster_log)}"
            )

    # ------------------------------------------------------------------ results

    def summarize(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for phase, sides in self.records.items():
            out[phase] = {}
            for side, runs in sides.items():
                keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
                out[phase][side] = {key: summary([run.get(key) for run in runs]) for key in keys}
                out[phase][side]["runs"] = runs
        return out


def tail(path: str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group this benchmark started, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _count() -> dict[str, Any]:
    from django.db.models import Count

    return {"n": Count("pk")}
