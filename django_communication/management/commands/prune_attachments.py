from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from django_communication.attachment_retention import prune_old_messages, remove_orphans


class Command(BaseCommand):
    help = (
        "Delete stored attachments nothing refers to (older than --grace-hours) and, with "
        "--older-than-days, those of older messages, unless an unsent outbox event needs them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days", type=float, help="Also delete the files of messages this old."
        )
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=24.0,
            help="Files nothing refers to are deleted once this old (default 24).",
        )

    def handle(self, *args, older_than_days=None, grace_hours=24.0, **options):
        if grace_hours < 0 or (older_than_days is not None and older_than_days < 0):
            raise CommandError("--grace-hours and --older-than-days must be >= 0.")
        pruned = prune_old_messages(older_than_days) if older_than_days is not None else 0
        orphans = remove_orphans(timedelta(hours=grace_hours))
        self.stdout.write(f"Deleted {pruned} files of old messages and {orphans} orphan files.")
