from __future__ import annotations

from django_communication.exceptions import CommunicationError, InvalidArgumentError


class OutboxError(CommunicationError):
    """Root of the outbox's own errors."""


class InvalidEventError(OutboxError, InvalidArgumentError):
    """emit() was called with arguments that cannot make an event; nothing was written."""
