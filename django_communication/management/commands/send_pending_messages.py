"""``manage.py send_pending_messages``: send the messages a crash left ``pending``."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from django_communication.models import Message
from django_communication.pending import DEFAULT_AGE, send_pending


class Command(BaseCommand):
    help = (
        "Send outbound messages left pending (with an idempotency key) for longer than "
        "--older-than seconds: sends deferred to a commit whose process died before sending."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=DEFAULT_AGE.total_seconds(),
            help="Only rows untouched for this many seconds (default: %(default)s).",
        )
        parser.add_argument("--limit", type=int, default=None, help="Send at most this many.")

    def handle(self, *args, older_than: float, limit: int | None, **options) -> None:
        results = send_pending(timedelta(seconds=older_than), limit)
        sent = sum(isinstance(r, Message) for r in results)
        self.stdout.write(
            f"pending messages found: {len(results)}; sent: {sent}; failed: {len(results) - sent}"
        )
