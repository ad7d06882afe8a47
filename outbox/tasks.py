"""django-q2 task entry points. Register the periodic ones with ``manage.py outbox_schedule``."""

from __future__ import annotations

from . import relay, retention


def drain() -> str:
    return str(relay.drain())


def prune() -> int:
    """Delete finished (dispatched and cancelled) events older than RETENTION_DAYS."""
    return retention.prune()
