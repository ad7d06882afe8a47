"""django-communication: email and SMS from templates, one API, an audit log of every message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import (
    CommunicationError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidRecipientError,
    ProviderError,
    RecipientOptedOutError,
    RecipientSuppressedError,
    TemplateNotFoundError,
    TemplateRenderError,
)

if TYPE_CHECKING:
    from .query import get_messages_for_object
    from .sending import send

__all__ = [
    "CommunicationError",
    "ConfigurationError",
    "InvalidArgumentError",
    "InvalidRecipientError",
    "ProviderError",
    "RecipientOptedOutError",
    "RecipientSuppressedError",
    "TemplateNotFoundError",
    "TemplateRenderError",
    "get_messages_for_object",
    "send",
]


def __getattr__(name: str) -> Any:
    # send() needs the models, which cannot load before the app registry is ready.
    if name == "send":
        from .sending import send

        return send
    if name == "get_messages_for_object":
        from .query import get_messages_for_object

        return get_messages_for_object
    raise AttributeError(f"module 'django_communication' has no attribute {name!r}")
