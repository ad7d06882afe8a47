"""System checks for ``settings.COMMUNICATION`` and the settings singleton (``manage.py check``).

communication.E001  COMMUNICATION is not a dict, or has unknown names
communication.E002  ROUTING is malformed (unknown message type or channel)
communication.E003  RECIPIENT_RESOLVER is not importable or not callable
communication.E004  PROVIDERS is malformed, or a provider path does not import to a provider class
communication.E005  DEFAULT_PHONE_REGION is not a region code phonenumbers knows
communication.E006  CACHE_SECONDS is not a number >= 0
communication.W001  AWS secret keys are stored in the database while DEBUG is off
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning
from django.utils.module_loading import import_string

from .conf import DEFAULTS
from .models import Channel, MessageType


def _setting(name: str) -> Any:
    return getattr(settings, "COMMUNICATION", {}).get(name, DEFAULTS[name])


def check_settings(app_configs=None, **kwargs) -> list:
    value = getattr(settings, "COMMUNICATION", {})
    if not isinstance(value, dict):
        return [Error("settings.COMMUNICATION must be a dict.", id="communication.E001")]
    errors: list = []
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown COMMUNICATION setting(s): {', '.join(unknown)}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="communication.E001",
            )
        )
    errors += check_routing(_setting("ROUTING"))
    errors += check_resolver(_setting("RECIPIENT_RESOLVER"))
    errors += check_providers(_setting("PROVIDERS"))
    errors += check_phone_region(_setting("DEFAULT_PHONE_REGION"))
    errors += check_cache_seconds(_setting("CACHE_SECONDS"))
    return errors


def check_routing(routing: Any) -> list:
    if not isinstance(routing, dict):
        return [Error("COMMUNICATION['ROUTING'] must be a dict.", id="communication.E002")]
    errors = []
    for message_type, channel in routing.items():
        if message_type not in MessageType.values:
            errors.append(
                Error(
                    f"COMMUNICATION['ROUTING'] has unknown message type {message_type!r}.",
                    hint=f"Message types: {', '.join(MessageType.values)}.",
                    id="communication.E002",
                )
            )
        if channel not in Channel.values:
            errors.append(
                Error(
                    f"COMMUNICATION['ROUTING'][{message_type!r}] = {channel!r} is not a channel.",
                    hint=f"Channels: {', '.join(Channel.values)}.",
                    id="communication.E002",
                )
            )
    return errors


def check_resolver(resolver: Any) -> list:
    if resolver is None or callable(resolver):
        return []
    if not isinstance(resolver, str):
        return [
            Error(
                "COMMUNICATION['RECIPIENT_RESOLVER'] must be a dotted path or a callable.",
                id="communication.E003",
            )
        ]
    try:
        target = import_string(resolver)
    except ImportError as exc:
        return [
            Error(
                f"COMMUNICATION['RECIPIENT_RESOLVER'] {resolver!r} cannot be imported: {exc}",
                id="communication.E003",
            )
        ]
    if not callable(target):
        return [
            Error(
                f"COMMUNICATION['RECIPIENT_RESOLVER'] {resolver!r} is not callable.",
                id="communication.E003",
            )
        ]
    return []


def check_providers(providers: Any) -> list:
    from .providers.base import BaseProvider

    if not isinstance(providers, dict):
        return [
            Error(
                "COMMUNICATION['PROVIDERS'] must be a dict of name -> dotted path.",
                id="communication.E004",
            )
        ]
    errors = []
    for name, path in providers.items():
        if not isinstance(path, str):
            errors.append(
                Error(
                    f"Provider {name!r} must be a dotted path to a provider class, not {path!r}.",
                    id="communication.E004",
                )
            )
            continue
        try:
            cls = import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            errors.append(
                Error(
                    f"Provider {name!r} ({path!r}) cannot be imported: {exc}",
                    id="communication.E004",
                )
            )
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
            errors.append(
                Error(
                    f"Provider {name!r} ({path!r}) is not a subclass of "
                    "django_communication.providers.BaseProvider.",
                    id="communication.E004",
                )
            )
        elif not cls.channels:
            errors.append(
                Error(
                    f"Provider {name!r} ({path!r}) declares no channels.", id="communication.E004"
                )
            )
    return errors


def check_phone_region(region: Any) -> list:
    if region is None:
        return []
    import phonenumbers

    if not isinstance(region, str) or region not in phonenumbers.SUPPORTED_REGIONS:
        return [
            Error(
                f"COMMUNICATION['DEFAULT_PHONE_REGION'] {region!r} is not a known region code.",
                hint="Use an ISO 3166-1 alpha-2 code such as 'GB' or 'US', or None.",
                id="communication.E005",
            )
        ]
    return []


def check_cache_seconds(seconds: Any) -> list:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        return [
            Error("COMMUNICATION['CACHE_SECONDS'] must be a number >= 0.", id="communication.E006")
        ]
    return []


def check_stored_secrets(app_configs=None, **kwargs) -> list:
    """Warn when AWS secrets live in the database of a production deployment."""
    if settings.DEBUG:
        return []
    from .models import CommunicationSettings

    try:
        config = CommunicationSettings.objects.filter(pk=1).first()
    except Exception:  # table not migrated yet, database unavailable or blocked in tests
        return []
    if config and (config.ses_secret_access_key or config.sns_secret_access_key):
        return [
            Warning(
                "AWS secret access keys are stored in the database (communication settings).",
                hint="Clear them and let boto3 find credentials in the environment or an IAM role.",
                id="communication.W001",
            )
        ]
    return []
