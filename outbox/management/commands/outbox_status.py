from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from outbox.health import OutboxHealth, format_seconds, outbox_health

#: The exit status when the lag exceeds the threshold ("critical" to Nagios-style probes).
UNHEALTHY_EXIT = 2


class Command(BaseCommand):
    help = (
        "Print the outbox's figures: events per status, the lag (age of the oldest due event), "
        "dead events in the last hour, dispatches per minute. Exits with status 2 when the lag "
        "exceeds the threshold, so it can serve as a liveness probe."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--lag-threshold",
            type=float,
            metavar="SECONDS",
            help="Lag above which the outbox is unhealthy "
            "(default OUTBOX['LAG_THRESHOLD_SECONDS']).",
        )
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print one JSON object."
        )

    def handle(self, *args, lag_threshold=None, as_json=False, **options):
        if lag_threshold is not None and lag_threshold < 0:
            raise CommandError("--lag-threshold must be >= 0.")
        figures = outbox_health(lag_threshold)
        if as_json:
            self.stdout.write(json.dumps(figures.as_dict(), sort_keys=True))
        else:
            self.stdout.write(describe(figures))
        if not figures.healthy:
            raise CommandError(
                f"Outbox lag {format_seconds(figures.lag_seconds)} exceeds the threshold of "
                f"{format_seconds(figures.lag_threshold_seconds)}.",
                returncode=UNHEALTHY_EXIT,
            )


def describe(figures: OutboxHealth) -> str:
    state = "OK" if figures.healthy else "LAGGING"
    lines = [
        f"Outbox {state} at {figures.checked_at:%Y-%m-%d %H:%M:%S %Z}",
        f"  lag                   {format_seconds(figures.lag_seconds)} "
        f"(threshold {format_seconds(figures.lag_threshold_seconds)})",
    ]
    if figures.oldest_due_at is not None:
        lines.append(f"  oldest due since      {figures.oldest_due_at:%Y-%m-%d %H:%M:%S %Z}")
    lines += [f"  {status:<21} {count}" for status, count in figures.counts.items()]
    lines += [
        f"  dead in the last hour {figures.dead_last_hour}",
        f"  dispatched per minute {figures.dispatched_per_minute:.1f} (last 5 minutes)",
    ]
    if figures.configuration_problems:
        lines += [
            f"  CONFIGURATION PROBLEM: {figures.configuration_problems} pending event(s) wait "
            "for an administrator; the latest error:",
            f"    {figures.configuration_error}",
        ]
    return "\n".join(lines)
