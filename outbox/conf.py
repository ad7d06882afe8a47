"""The one accessor for ``settings.OUTBOX``, read live so override_settings just works."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from django_communication.conf import DEFAULT_CONCURRENCY

DEFAULTS: dict[str, Any] = {
    "RULES": {},
    "MAX_ATTEMPTS": 8,
    "BACKOFF_SECONDS": 10.0,
    "BACKOFF_MAX_SECONDS": 3600.0,
    "LEASE_SECONDS": 30.0,
    "BATCH_SIZE": 500,
    "CONCURRENCY": DEFAULT_CONCURRENCY,
    "RETENTION_DAYS": 7.0,
    "WAKE_ON_COMMIT": True,
    "WAKE_INTERVAL_SECONDS": 0.2,
    "SCHEDULE_MINUTES": 1,
    "ASYNC_COMMIT": True,
    "LAG_THRESHOLD_SECONDS": 300.0,
    "HEALTH_TOKEN": None,
    "HEALTH_LAGGING_STATUS": 503,
}

RULE_KEYS = frozenset({"template_key", "message_type", "channel", "language"})

#: The event type of a send() deferred to its transaction's commit (outbox/deferred.py): handled
#: without a rule; its context lists the messages' idempotency keys. No rule may use it.
DEFERRED_SEND = "django_communication.send"


@dataclass(frozen=True)
class Rule:
    template_key: str
    message_type: str | None = None
    channel: str | None = None
    #: The language of this rule's messages, before the event's and the recipient's.
    language: str | None = None

    @property
    def key(self) -> str:
        """Identifies the rule within its event: part of each message's idempotency key."""
        return f"{self.template_key}:{self.channel or self.message_type or ''}"


class OutboxSettings:
    def user_settings(self) -> dict[str, Any]:
        """``settings.OUTBOX`` as given (the checks report a value that is not a dict)."""
        return getattr(settings, "OUTBOX", {})

    def get(self, name: str) -> Any:
        return (self.user_settings() or {}).get(name, DEFAULTS[name])

    def handles(self, event_type: str) -> bool:
        """Whether RULES has a rule for ``event_type`` (a dict lookup: emit() asks each time), or
        the event is a deferred send()."""
        rules = self.get("RULES")
        return (isinstance(rules, dict) and event_type in rules) or event_type == DEFERRED_SEND

    def rules_for(self, event_type: str) -> list[Rule]:
        """The rules of an event type, as Rule objects (shape checked by outbox.checks)."""
        raw = self.get("RULES").get(event_type)
        if raw is None:
            return []
        if isinstance(raw, dict):
            raw = [raw]
        return [Rule(**item) for item in raw]

    @property
    def max_attempts(self) -> int:
        return int(self.get("MAX_ATTEMPTS"))

    @property
    def backoff_seconds(self) -> float:
        return float(self.get("BACKOFF_SECONDS"))

    @property
    def backoff_max_seconds(self) -> float:
        return float(self.get("BACKOFF_MAX_SECONDS"))

    @property
    def lease_seconds(self) -> float:
        return float(self.get("LEASE_SECONDS"))

    @property
    def batch_size(self) -> int:
        return int(self.get("BATCH_SIZE"))

    @property
    def concurrency(self) -> int:
        return int(self.get("CONCURRENCY"))

    @property
    def retention_days(self) -> float:
        return float(self.get("RETENTION_DAYS"))

    @property
    def wake_on_commit(self) -> bool:
        return bool(self.get("WAKE_ON_COMMIT"))

    @property
    def wake_interval_seconds(self) -> float:
        return float(self.get("WAKE_INTERVAL_SECONDS"))

    @property
    def async_commit(self) -> bool:
        return bool(self.get("ASYNC_COMMIT"))

    @property
    def schedule_minutes(self) -> int:
        return int(self.get("SCHEDULE_MINUTES"))

    @property
    def lag_threshold_seconds(self) -> float:
        return float(self.get("LAG_THRESHOLD_SECONDS"))

    @property
    def health_token(self) -> str | None:
        return self.get("HEALTH_TOKEN") or None

    @property
    def health_lagging_status(self) -> int:
        return int(self.get("HEALTH_LAGGING_STATUS"))


outbox_settings = OutboxSettings()
