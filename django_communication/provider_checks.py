"""The system checks of the provider settings (E004 PROVIDERS, E012 FALLBACK, E013 RATE_LIMITS);
checks.py runs them with the others."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error
from django.utils.module_loading import import_string

from .choices import Channel
from .exceptions import ConfigurationError
from .providers.base import BaseProvider
from .providers.registry import provider_class


def check_providers(providers: Any) -> list:
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


def check_fallback(value: Any) -> list:
    def error(text: str) -> Error:
        return Error(
            f"COMMUNICATION['FALLBACK'] {text}",
            hint='For example {"email": ["django"]}: providers tried, in order, after the '
            "settings singleton's provider for the channel fails retryably.",
            id="communication.E012",
        )

    if not isinstance(value, dict):
        return [error("must be a dict of channel -> list of provider names.")]
    errors = []
    for channel, names in value.items():
        if channel not in Channel.values:
            errors.append(error(f"has unknown channel {channel!r}."))
            continue
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            errors.append(error(f"[{channel!r}] must be a list of provider names."))
            continue
        if len(set(names)) != len(names):
            errors.append(error(f"[{channel!r}] names a provider twice."))
        for name in names:
            try:
                cls = provider_class(name)
            except ConfigurationError as exc:
                errors.append(error(f"[{channel!r}]: {exc}"))
                continue
            if channel not in cls.channels:
                errors.append(error(f"[{channel!r}]: provider {name!r} cannot send {channel}."))
    return errors


def check_rate_limits(value: Any) -> list:
    def error(text: str) -> Error:
        return Error(
            f"COMMUNICATION['RATE_LIMITS'] {text}",
            hint='For example {"ses": 14}: at most 14 messages per second through "ses", '
            "counted across every process.",
            id="communication.E013",
        )

    if not isinstance(value, dict):
        return [error("must be a dict of provider name -> messages per second.")]
    errors = []
    for name, rate in value.items():
        try:
            provider_class(name)
        except ConfigurationError as exc:
            errors.append(error(f"has {name!r}: {exc}"))
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            errors.append(error(f"[{name!r}] = {rate!r} is not a number of messages per second."))
    return errors
