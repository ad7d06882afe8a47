"""The system checks of the twilio provider; apps.py registers them with the others.

communication.E020  COMMUNICATION["TWILIO"] is malformed: not a dict, unknown keys, values that
                    are not strings, an API_URL that is not an absolute http(s) URL
communication.E021  the twilio provider is in use (a channel's provider in the settings
                    singleton, or in FALLBACK) without an account SID and an auth token
communication.E022  the twilio provider is in use but the twilio package is not installed
communication.W005  the twilio provider is in use without SITE_URL: no status callbacks, and
                    calls with keypad choices cannot be placed
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.checks import Error, Warning

from .conf import TWILIO_KEYS, comm_settings
from .exceptions import ConfigurationError
from .models import CommunicationSettings
from .providers.registry import PROVIDER_FIELDS, provider_class
from .providers.twilio import EXTRA, TwilioProvider, credentials, sdk


def check_twilio_settings(value: Any) -> list:
    def error(text: str) -> Error:
        return Error(
            f"COMMUNICATION['TWILIO'] {text}",
            hint=f"Keys: {', '.join(sorted(TWILIO_KEYS))}, each a string.",
            id="communication.E020",
        )

    if not isinstance(value, dict):
        return [error("must be a dict.")]
    errors = []
    unknown = sorted(map(str, set(value) - TWILIO_KEYS))
    if unknown:
        errors.append(error(f"has unknown key(s): {', '.join(unknown)}."))
    for key in sorted(TWILIO_KEYS & set(value)):
        if value[key] is not None and not isinstance(value[key], str):
            errors.append(error(f"[{key!r}] must be a string, not {type(value[key]).__name__}."))
    api_url = value.get("API_URL")
    if isinstance(api_url, str) and api_url:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(error(f"['API_URL'] {api_url!r} is not an absolute http(s) URL."))
    return errors


def twilio_in_use(config: CommunicationSettings | None) -> list[str]:
    """Where a provider of the twilio kind is named: singleton fields and FALLBACK channels."""
    places = []
    named = (
        [(field, getattr(config, field)) for field in PROVIDER_FIELDS.values()] if config else []
    )
    fallback = comm_settings.get("FALLBACK")
    if isinstance(fallback, dict):
        for channel, names in fallback.items():
            if isinstance(names, (list, tuple)):
                named += [(f"FALLBACK[{channel!r}]", name) for name in names]
    for place, name in named:
        try:
            cls = provider_class(name)
        except (ConfigurationError, TypeError):
            continue  # E004 / E012 report it
        if isinstance(cls, type) and issubclass(cls, TwilioProvider):
            places.append(place)
    return places


def check_twilio(app_configs=None, **kwargs) -> list:
    try:
        value = comm_settings.get("TWILIO")
    except ConfigurationError:  # E001 reports it
        return []
    errors = check_twilio_settings(value)
    if errors:
        return errors
    try:
        config = CommunicationSettings.objects.filter(pk=1).first()
    except Exception:  # table not migrated yet, database unavailable or blocked in tests
        config = None
    places = twilio_in_use(config)
    if not places:
        return []
    where = ", ".join(places)
    try:
        sdk()
    except ConfigurationError:
        errors.append(
            Error(
                f"The twilio provider is in use ({where}) but the twilio package is not installed.",
                hint=EXTRA,
                id="communication.E022",
            )
        )
    sid, token = credentials(config or CommunicationSettings())
    if not sid or not token:
        errors.append(
            Error(
                f"The twilio provider is in use ({where}) without "
                f"{'an account SID' if not sid else 'an auth token'}.",
                hint="Set COMMUNICATION['TWILIO']['ACCOUNT_SID'] and ['AUTH_TOKEN'] (or the "
                "environment variables TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN), or the Twilio "
                "fields of the communication settings.",
                id="communication.E021",
            )
        )
    if not comm_settings.get("SITE_URL"):
        errors.append(
            Warning(
                f"The twilio provider is in use ({where}) without COMMUNICATION['SITE_URL']: "
                "Twilio reports no status, and calls with keypad choices cannot be placed.",
                hint="Set SITE_URL to the public base URL of this site, e.g. "
                "'https://shop.example.com'.",
                id="communication.W005",
            )
        )
    return errors
