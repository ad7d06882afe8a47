"""The one accessor for ``settings.COMMUNICATION``, read live so override_settings just works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import ConfigurationError

DEFAULT_ROUTING = {
    "transactional": "email",
    "reminder": "sms",
    "alert": "sms",
    "announcement": "email",
}

#: send_many()'s provider calls in flight at most (delivery lanes), unless told otherwise.
DEFAULT_CONCURRENCY = 16
#: The most lanes a batch may have (the boto3 clients' connection pools hold that many).
MAX_CONCURRENCY = 64

DEFAULTS: dict[str, Any] = {
    "ROUTING": {},
    "RECIPIENT_RESOLVER": None,
    "LANGUAGE_RESOLVER": None,
    "ATTACHMENT_STORAGE": "default",
    "ATTACHMENT_MAX_BYTES": 10 * 1024 * 1024,
    "PROVIDERS": {},
    "DEFAULT_PHONE_REGION": None,
    "CACHE_SECONDS": 60,
    "SITE_URL": None,
    "SNS_TOPIC_ARNS": [],
    "WEBHOOK_MAX_BYTES": 1024 * 1024,
    "INBOUND_SENDER_RESOLVER": None,
    "FALLBACK": {},
    "RATE_LIMITS": {},
    "UNSUBSCRIBE_TOKEN_DAYS": 365,
    "UNSUBSCRIBE_LEGACY_TOKENS": True,
    "STRICT_TEMPLATES": False,
    "IN_TRANSACTION": "defer",
    "TWILIO": {},
}

#: What ``COMMUNICATION["TWILIO"]`` may hold (each a string; every one optional).
TWILIO_KEYS = frozenset({"ACCOUNT_SID", "AUTH_TOKEN", "API_URL"})


class CommunicationConf:
    """Typed view of ``settings.COMMUNICATION`` with defaults, read by the runtime and the system
    checks alike. (The settings singleton edited in the admin is the model
    ``models.CommunicationSettings``.)"""

    def user_settings(self) -> dict[str, Any]:
        """``settings.COMMUNICATION`` as given; ConfigurationError if it is not a dict."""
        value = getattr(settings, "COMMUNICATION", {})
        if not isinstance(value, dict):
            raise ConfigurationError("settings.COMMUNICATION must be a dict.")
        return value

    def get(self, name: str) -> Any:
        """The raw value of ``name`` (its default when unset), unvalidated."""
        return self.user_settings().get(name, DEFAULTS[name])

    def unknown_names(self) -> list[str]:
        return sorted(set(self.user_settings()) - set(DEFAULTS))

    @property
    def routing(self) -> dict[str, str]:
        return {**DEFAULT_ROUTING, **(self.get("ROUTING") or {})}

    @property
    def providers(self) -> dict[str, str]:
        return dict(self.get("PROVIDERS") or {})

    @property
    def default_phone_region(self) -> str | None:
        return self.get("DEFAULT_PHONE_REGION")

    @property
    def cache_seconds(self) -> float:
        return float(self.get("CACHE_SECONDS"))

    @property
    def recipient_resolver(self) -> Callable[[Any, str], str | None] | None:
        return self._callable("RECIPIENT_RESOLVER")

    @property
    def language_resolver(self) -> Callable[[Any], str | None] | None:
        """``(to) -> language code or None``: the recipient's language (languages.py)."""
        return self._callable("LANGUAGE_RESOLVER")

    @property
    def attachment_storage(self) -> str:
        """The alias in ``settings.STORAGES`` attachments are stored in."""
        return self.get("ATTACHMENT_STORAGE")

    @property
    def attachment_max_bytes(self) -> int:
        """The most bytes of attachments one message may carry, whatever the provider."""
        return int(self.get("ATTACHMENT_MAX_BYTES"))

    @property
    def inbound_sender_resolver(self) -> Callable[[str, str], Any] | None:
        """``(address, channel) -> model instance or None``: who wrote an inbound message."""
        return self._callable("INBOUND_SENDER_RESOLVER")

    @property
    def site_url(self) -> str | None:
        """Absolute base URL for links in messages (unsubscribe), without a trailing slash."""
        value = self.get("SITE_URL")
        return value.rstrip("/") if value else None

    @property
    def sns_topic_arns(self) -> frozenset[str]:
        return frozenset(self.get("SNS_TOPIC_ARNS") or ())

    @property
    def webhook_max_bytes(self) -> int:
        return int(self.get("WEBHOOK_MAX_BYTES"))

    @property
    def fallback(self) -> dict[str, list[str]]:
        """Channel → provider names tried, in order, after the singleton's provider fails
        retryably."""
        return self.get("FALLBACK") or {}

    @property
    def rate_limits(self) -> dict[str, float]:
        """Provider name → maximum messages per second, shared by every process."""
        return self.get("RATE_LIMITS") or {}

    @property
    def unsubscribe_token_days(self) -> float | None:
        """How many days an unsubscribe link works; None: for ever."""
        value = self.get("UNSUBSCRIBE_TOKEN_DAYS")
        return None if value is None else float(value)

    @property
    def unsubscribe_legacy_tokens(self) -> bool:
        return bool(self.get("UNSUBSCRIBE_LEGACY_TOKENS"))

    @property
    def strict_templates(self) -> bool:
        """A variable the context lacks fails the render instead of rendering empty."""
        return self.get("STRICT_TEMPLATES") is True

    @property
    def in_transaction(self) -> str:
        """What send() does inside ``transaction.atomic()``: "defer", "now" or "raise"."""
        return self.get("IN_TRANSACTION")

    @property
    def twilio(self) -> dict[str, str]:
        """``ACCOUNT_SID``, ``AUTH_TOKEN`` (override the settings singleton's) and ``API_URL``
        (another endpoint than https://api.twilio.com, such as a local stand-in)."""
        return dict(self.get("TWILIO") or {})

    def _callable(self, name: str) -> Callable[..., Any] | None:
        value = self.get(name)
        if value is None or callable(value):
            return value
        try:
            return import_string(value)
        except ImportError as exc:
            raise ConfigurationError(
                f"COMMUNICATION[{name!r}] = {value!r} cannot be imported: {exc}"
            ) from exc


comm_settings = CommunicationConf()
