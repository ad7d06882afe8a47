"""Provider names → classes: the built-ins plus ``COMMUNICATION["PROVIDERS"]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from ..cache import provider_cache, settings_row
from ..conf import comm_settings
from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..models import CommunicationSettings
    from .base import BaseProvider

BUILTIN_PROVIDERS = {
    "console": "django_communication.providers.console.ConsoleProvider",
    "memory": "django_communication.providers.memory.MemoryProvider",
    "django": "django_communication.providers.django_mail.DjangoMailProvider",
    "ses": "django_communication.providers.ses.SesProvider",
    "sns": "django_communication.providers.sns.SnsProvider",
    "twilio": "django_communication.providers.twilio.TwilioProvider",
}

#: The settings singleton's field naming each channel's provider.
PROVIDER_FIELDS = {"email": "email_provider", "sms": "sms_provider", "voice": "voice_provider"}


def provider_paths() -> dict[str, str]:
    return {**BUILTIN_PROVIDERS, **comm_settings.providers}


def providers_for_channel(channel: str) -> list[str]:
    """The names of the providers (built in and COMMUNICATION["PROVIDERS"]) that import and can
    send on ``channel``, sorted."""
    names = []
    for name in sorted(provider_paths()):
        try:
            cls = provider_class(name)
        except ConfigurationError:
            continue
        if channel in getattr(cls, "channels", ()):
            names.append(name)
    return names


def provider_class(name: str) -> type[BaseProvider]:
    paths = provider_paths()
    if name not in paths:
        raise ConfigurationError(
            f"Unknown provider {name!r}. Known providers: {', '.join(sorted(paths))}; add your "
            f"own in COMMUNICATION['PROVIDERS']."
        )
    try:
        return import_string(paths[name])
    except ImportError as exc:
        raise ConfigurationError(
            f"Provider {name!r} ({paths[name]}) cannot be imported: {exc}"
        ) from exc


def provider_for_channel(channel: str, name: str | None = None) -> BaseProvider:
    """The configured provider instance for a channel (or the provider ``name``, a fallback),
    built again only when the settings row changes."""
    config = settings_row()
    if name is None:
        name = getattr(config, PROVIDER_FIELDS[channel])

    def build() -> BaseProvider:
        cls = provider_class(name)
        if channel not in cls.channels:
            raise ConfigurationError(
                f"Provider {name!r} cannot send {channel}; it serves "
                f"{', '.join(sorted(cls.channels)) or 'no channel'}."
            )
        return cls(config)

    return provider_cache.get(channel, name, config, build)


def provider_choice_errors(config: CommunicationSettings) -> dict[str, str]:
    """Field name → why the provider named there cannot serve its channel, for the settings
    singleton's provider fields (the admin form shows them)."""
    errors = {}
    for channel, field in PROVIDER_FIELDS.items():
        name = getattr(config, field)
        try:
            cls = provider_class(name)
        except ConfigurationError as exc:
            errors[field] = str(exc)
            continue
        if channel not in cls.channels:
            errors[field] = f"Provider {name!r} cannot send {channel}."
    return errors
