from __future__ import annotations

from django.core.management.base import BaseCommand
from django_q.models import Schedule

from outbox.conf import outbox_settings

SCHEDULES = {
    "outbox-drain": "outbox.tasks.drain",
    "outbox-prune": "outbox.tasks.prune",
}


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedules that drain the outbox every "
        "OUTBOX['SCHEDULE_MINUTES'] minutes (the safety net behind the on-commit wake-up) and "
        "prune old dispatched and cancelled events daily. Safe to run on every deploy."
    )

    def handle(self, *args, **options):
        Schedule.objects.update_or_create(
            name="outbox-drain",
            defaults={
                "func": SCHEDULES["outbox-drain"],
                "schedule_type": Schedule.MINUTES,
                "minutes": outbox_settings.schedule_minutes,
                "repeats": -1,
            },
        )
        Schedule.objects.update_or_create(
            name="outbox-prune",
            defaults={
                "func": SCHEDULES["outbox-prune"],
                "schedule_type": Schedule.DAILY,
                "repeats": -1,
            },
        )
        self.stdout.write(
            f"Scheduled outbox drain every {outbox_settings.schedule_minutes} minute(s) "
            "and a daily prune."
        )
