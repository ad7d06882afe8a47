from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from outbox.retention import prune


class Command(BaseCommand):
    help = "Delete dispatched and cancelled outbox events older than the retention period."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=float, help="Retention in days (default OUTBOX['RETENTION_DAYS'])."
        )

    def handle(self, *args, days=None, **options):
        if days is not None and days < 0:
            raise CommandError("--days must be >= 0.")
        deleted = prune(days)
        self.stdout.write(f"Pruned {deleted} outbox events.")
