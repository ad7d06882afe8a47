from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from django_communication.conf import MAX_CONCURRENCY
from outbox.outcomes import DrainSummary
from outbox.reconnect import CONNECTION_ERRORS, resilient
from outbox.relay import drain
from outbox.stopping import Stop


class Command(BaseCommand):
    help = "Dispatch the outbox events that are due, then exit (or keep polling with --loop)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            help="Events claimed per batch (default OUTBOX['BATCH_SIZE']).",
        )
        parser.add_argument("--limit", type=int, help="Stop after processing this many events.")
        parser.add_argument(
            "--concurrency",
            type=int,
            help=f"Provider calls in flight, 1 to {MAX_CONCURRENCY} "
            "(default OUTBOX['CONCURRENCY']).",
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="Keep polling, through lost database connections, until SIGTERM or SIGINT; "
            "for deployments without django-q2.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="Seconds between polls with --loop when idle (default 1).",
        )

    def handle(self, *args, **options):
        try:
            self.relay(**options)
        except CONNECTION_ERRORS as exc:  # without --loop: one drain, no reconnect
            raise CommandError(
                f"Lost the database connection: {exc}".rstrip()
                + " Run drain_outbox again (with --loop it reconnects by itself); the interrupted"
                " batch is due again after LEASE_SECONDS."
            ) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"The database refused the relay's work: {exc}".rstrip()
                + " A reconnect cannot fix this: check DATABASES and run `manage.py migrate`."
            ) from exc

    def relay(
        self,
        batch_size=None,
        limit=None,
        loop=False,
        interval=1.0,
        concurrency=None,
        **options,
    ):
        for name, value in (("--batch-size", batch_size), ("--limit", limit)):
            if value is not None and value < 1:
                raise CommandError(f"{name} must be at least 1.")
        if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
            raise CommandError(f"--concurrency must be from 1 to {MAX_CONCURRENCY}.")
        if interval <= 0:
            raise CommandError("--interval must be greater than 0.")
        progress = self.progress_bar if self.stdout.isatty() else None
        with Stop().on_signals() as stop:
            if not loop:
                summary = drain(
                    batch_size=batch_size,
                    limit=limit,
                    progress=progress,
                    stop=stop,
                    concurrency=concurrency,
                )
                self.report(summary)
                return
            total = DrainSummary()
            while not stop.requested:
                summary = DrainSummary()
                resilient(
                    lambda summary=summary: drain(
                        batch_size,
                        limit,
                        progress,
                        stop=stop,
                        summary=summary,
                        concurrency=concurrency,
                    ),
                    stop,
                )
                total.add(summary)
                if summary.processed and options["verbosity"] > 1:
                    self.report(summary)
                if not summary.processed:
                    stop.wait(interval)
            self.report(total)

    def progress_bar(self, summary: DrainSummary) -> None:
        sys.stdout.write(f"\r{summary.processed} events ({summary})")
        sys.stdout.flush()

    def report(self, summary: DrainSummary) -> None:
        if self.stdout.isatty():
            self.stdout.write("")
        self.stdout.write(f"Outbox drained: {summary}.")
