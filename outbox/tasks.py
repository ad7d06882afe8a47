"""django-q2 task entry points. Register the periodic ones with ``manage.py outbox_schedule``."""

from __future__ import annotations

from .relay import DrainSummary, prune


def drain() -> str:
    from .relay import drain as drain_outbox

    summary: DrainSummary = drain_outbox()
    return str(summary)


def prune_dispatched() -> int:
    return prune()
