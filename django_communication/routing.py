"""Which channel a message goes on: explicit > message-type routing > the default channel."""

from __future__ import annotations

from .cache import settings_row
from .choices import Channel, MessageType
from .conf import comm_settings
from .exceptions import InvalidArgumentError

CHANNELS = frozenset(Channel.values)
MESSAGE_TYPES = frozenset(MessageType.values)


def validate_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise InvalidArgumentError(
            f"Unknown channel {channel!r}; expected one of {', '.join(sorted(CHANNELS))}."
        )
    return channel


def validate_message_type(message_type: str) -> str:
    if message_type not in MESSAGE_TYPES:
        raise InvalidArgumentError(
            f"Unknown message type {message_type!r}; expected one of "
            f"{', '.join(sorted(MESSAGE_TYPES))}."
        )
    return message_type


def choose_channel(channel: str | None, message_type: str | None) -> str:
    if channel:
        return validate_channel(channel)
    if message_type:
        routed = comm_settings.routing.get(validate_message_type(message_type))
        if routed:
            return validate_channel(routed)
    return settings_row().default_channel
