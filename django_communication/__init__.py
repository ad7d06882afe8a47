"""django-communication: email and SMS from templates, one API, an audit log of every message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    CommunicationError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidRecipientError,
    ProviderConfigurationError,
    ProviderError,
    RecipientOptedOutError,
    RecipientSuppressedError,
    TemplateNotFoundError,
    TemplateRenderError,
)

if TYPE_CHECKING:
    from .references import get_messages_for_object
    from .sending import SendRequest, send, send_many

__all__ = [
    "CommunicationError",
    "ConfigurationError",
    "InvalidArgumentError",
    "InvalidRecipientError",
    "ProviderConfigurationError",
    "ProviderError",
    "RecipientOptedOutError",
    "RecipientSuppressedError",
    "SendRequest",
    "TemplateNotFoundError",
    "TemplateRenderError",
    "get_messages_for_object",
    "send",
    "send_many",
]


def __getattr__(name: str) -> Any:
    # send() needs the models, which cannot load before the app registry is ready.
    if name in ("send", "send_many", "SendRequest"):
        from . import sending

        return getattr(sending, name)
    if name == "get_messages_for_object":
        from .references import get_messages_for_object

        return get_messages_for_object
    raise AttributeError(f"module 'django_communication' has no attribute {name!r}")
