"""System checks for ``settings.COMMUNICATION`` and the settings singleton (``manage.py check``).

communication.E001  COMMUNICATION is not a dict, or has unknown names
communication.E002  ROUTING is malformed (unknown message type or channel)
communication.E003  RECIPIENT_RESOLVER is not importable or not callable
communication.E004  PROVIDERS is malformed, or a provider path does not import to a provider class
communication.E005  DEFAULT_PHONE_REGION is not a region code phonenumbers knows
communication.E006  CACHE_SECONDS is not a number >= 0
communication.E007  SITE_URL is not None or an absolute http(s) URL
communication.E008  SNS_TOPIC_ARNS is not a list of SNS topic ARNs
communication.E009  INBOUND_SENDER_RESOLVER is not importable or not callable
communication.E010  WEBHOOK_MAX_BYTES is not an integer > 0
communication.E011  SITE_URL is set but django_communication.urls is not in the URLconf
communication.E012  FALLBACK is malformed: not channel -> list of provider names, an unknown
                    provider, one that cannot send on the channel, or a name twice
communication.E013  RATE_LIMITS is malformed: not provider name -> messages per second > 0, or
                    an unknown provider
communication.E014  UNSUBSCRIBE_TOKEN_DAYS is not None or a number > 0, or
                    UNSUBSCRIBE_LEGACY_TOKENS is not True or False
communication.E015  STRICT_TEMPLATES is not a bool
communication.E016  IN_TRANSACTION is not "defer", "now" or "raise"
communication.E018  LANGUAGE_RESOLVER is not importable or not callable
communication.E019  ATTACHMENT_STORAGE is not a key of settings.STORAGES, or
                    ATTACHMENT_MAX_BYTES is not an integer > 0
communication.W001  AWS secret keys or the Twilio auth token are stored in the database while
                    DEBUG is off
communication.W002  IN_TRANSACTION is "now" while a database has ATOMIC_REQUESTS on
communication.E020-E022, W005: the twilio provider's checks (twilio_checks.py)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .choices import Channel, MessageType
from .conf import DEFAULTS, comm_settings
from .deferral import MODES, NOW
from .exceptions import ConfigurationError
from .models import CommunicationSettings
from .provider_checks import check_fallback, check_providers, check_rate_limits


def check_settings(app_configs=None, **kwargs) -> list:
    try:
        unknown = comm_settings.unknown_names()
    except ConfigurationError as exc:
        return [Error(str(exc), id="communication.E001")]
    errors: list = []
    if unknown:
        errors.append(
            Error(
                f"Unknown COMMUNICATION setting(s): {', '.join(unknown)}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="communication.E001",
            )
        )
    errors += check_routing(comm_settings.get("ROUTING"))
    errors += check_resolver(comm_settings.get("RECIPIENT_RESOLVER"))
    errors += check_resolver(
        comm_settings.get("INBOUND_SENDER_RESOLVER"),
        "INBOUND_SENDER_RESOLVER",
        "communication.E009",
    )
    errors += check_resolver(
        comm_settings.get("LANGUAGE_RESOLVER"), "LANGUAGE_RESOLVER", "communication.E018"
    )
    errors += check_providers(comm_settings.get("PROVIDERS"))
    errors += check_phone_region(comm_settings.get("DEFAULT_PHONE_REGION"))
    errors += check_cache_seconds(comm_settings.get("CACHE_SECONDS"))
    errors += check_site_url(comm_settings.get("SITE_URL"))
    errors += check_topic_arns(comm_settings.get("SNS_TOPIC_ARNS"))
    errors += check_max_bytes(comm_settings.get("WEBHOOK_MAX_BYTES"))
    errors += check_unsubscribe_tokens(
        comm_settings.get("UNSUBSCRIBE_TOKEN_DAYS"), comm_settings.get("UNSUBSCRIBE_LEGACY_TOKENS")
    )
    errors += check_strict_templates(comm_settings.get("STRICT_TEMPLATES"))
    errors += check_in_transaction(comm_settings.get("IN_TRANSACTION"))
    errors += check_attachments(
        comm_settings.get("ATTACHMENT_STORAGE"), comm_settings.get("ATTACHMENT_MAX_BYTES")
    )
    if not any(error.id == "communication.E004" for error in errors):
        errors += check_fallback(comm_settings.get("FALLBACK"))
        errors += check_rate_limits(comm_settings.get("RATE_LIMITS"))
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


def check_resolver(
    resolver: Any, name: str = "RECIPIENT_RESOLVER", error_id: str = "communication.E003"
) -> list:
    if resolver is None or callable(resolver):
        return []
    if not isinstance(resolver, str):
        return [Error(f"COMMUNICATION[{name!r}] must be a dotted path or a callable.", id=error_id)]
    try:
        target = import_string(resolver)
    except ImportError as exc:
        return [
            Error(f"COMMUNICATION[{name!r}] {resolver!r} cannot be imported: {exc}", id=error_id)
        ]
    if not callable(target):
        return [Error(f"COMMUNICATION[{name!r}] {resolver!r} is not callable.", id=error_id)]
    return []


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


def check_site_url(value: Any) -> list:
    if value is None:
        return []
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
    ):
        return [
            Error(
                f"COMMUNICATION['SITE_URL'] {value!r} is not an absolute http(s) URL.",
                hint="For example 'https://shop.example.com' (no query, no fragment), or None.",
                id="communication.E007",
            )
        ]
    return []


#: arn:<partition>:sns:<region>:<account>:<topic>
TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")


def check_topic_arns(value: Any) -> list:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return [
            Error(
                "COMMUNICATION['SNS_TOPIC_ARNS'] must be a list of SNS topic ARNs.",
                id="communication.E008",
            )
        ]
    return [
        Error(
            f"COMMUNICATION['SNS_TOPIC_ARNS'] has {arn!r}, which is not an SNS topic ARN.",
            hint="For example 'arn:aws:sns:eu-west-1:123456789012:ses-events'.",
            id="communication.E008",
        )
        for arn in value
        if not isinstance(arn, str) or not TOPIC_ARN.match(arn)
    ]


def check_max_bytes(value: Any) -> list:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [
            Error(
                "COMMUNICATION['WEBHOOK_MAX_BYTES'] must be an integer > 0.",
                id="communication.E010",
            )
        ]
    return []


def check_unsubscribe_tokens(days: Any, legacy: Any) -> list:
    errors = []
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0
    ):
        errors.append(
            Error(
                f"COMMUNICATION['UNSUBSCRIBE_TOKEN_DAYS'] must be a number of days > 0 or None, "
                f"got {days!r}.",
                hint="How long an unsubscribe link works; at least 30 (CAN-SPAM), 365 by default.",
                id="communication.E014",
            )
        )
    if not isinstance(legacy, bool):
        errors.append(
            Error(
                "COMMUNICATION['UNSUBSCRIBE_LEGACY_TOKENS'] must be True or False, "
                f"got {legacy!r}.",
                id="communication.E014",
            )
        )
    return errors


def check_strict_templates(value: Any) -> list:
    if not isinstance(value, bool):
        return [
            Error(
                f"COMMUNICATION['STRICT_TEMPLATES'] must be True or False, not {value!r}.",
                id="communication.E015",
            )
        ]
    return []


def check_in_transaction(value: Any) -> list:
    if value not in MODES:
        return [
            Error(
                f"COMMUNICATION['IN_TRANSACTION'] = {value!r} is not one of "
                f"{', '.join(map(repr, MODES))}.",
                hint="'defer' (the default) sends after the commit, never on a rollback.",
                id="communication.E016",
            )
        ]
    atomic = sorted(alias for alias, db in settings.DATABASES.items() if db.get("ATOMIC_REQUESTS"))
    if value == NOW and atomic:
        return [
            Warning(
                f"COMMUNICATION['IN_TRANSACTION'] is 'now' while ATOMIC_REQUESTS is on for "
                f"database(s) {', '.join(atomic)}: every send() in a view goes out at once, "
                "even when the view fails and its transaction rolls back (and the Message row "
                "recording it is rolled back with it).",
                hint="Use 'defer' (the default), or pass in_transaction='now' only to the calls "
                "that must go out even on a rollback.",
                id="communication.W002",
            )
        ]
    return []


def check_attachments(storage: Any, max_bytes: Any) -> list:
    errors = []
    if not isinstance(storage, str) or storage not in settings.STORAGES:
        errors.append(
            Error(
                f"COMMUNICATION['ATTACHMENT_STORAGE'] = {storage!r} is not in settings.STORAGES.",
                hint=f"Storage aliases: {', '.join(settings.STORAGES)}.",
                id="communication.E019",
            )
        )
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
        errors.append(
            Error(
                f"COMMUNICATION['ATTACHMENT_MAX_BYTES'] must be an integer > 0, got {max_bytes!r}.",
                id="communication.E019",
            )
        )
    return errors


def check_urls(app_configs=None, **kwargs) -> list:
    """With SITE_URL set, announcement emails link to the unsubscribe view: it must resolve."""
    try:
        site_url = comm_settings.get("SITE_URL")
    except ConfigurationError:  # E001 reports it
        return []
    if not site_url:
        return []
    try:
        reverse("django_communication:unsubscribe", args=["token"])
    except NoReverseMatch:
        return [
            Error(
                "COMMUNICATION['SITE_URL'] is set but the unsubscribe view is not in the URLconf.",
                hint='Add path("communication/", include("django_communication.urls")) to it.',
                id="communication.E011",
            )
        ]
    return []


def check_stored_secrets(app_configs=None, **kwargs) -> list:
    """Warn when AWS secrets live in the database of a production deployment."""
    if settings.DEBUG:
        return []
    try:
        config = CommunicationSettings.objects.filter(pk=1).first()
    except Exception:  # table not migrated yet, database unavailable or blocked in tests
        return []
    if config and (
        config.ses_secret_access_key or config.sns_secret_access_key or config.twilio_auth_token
    ):
        return [
            Warning(
                "Secrets (AWS secret access keys, the Twilio auth token) are stored in the "
                "database (communication settings).",
                hint="Clear them and let boto3 find credentials in the environment or an IAM "
                "role; give Twilio's in COMMUNICATION['TWILIO'] or the environment.",
                id="communication.W001",
            )
        ]
    return []
