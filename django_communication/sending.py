"""send() and send_many(): compose the messages (composing.py), then deliver them, per channel,
through its provider and fallback chain (delivery.py, fallback.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models

from .composing import SendRequest, compose
from .delivery import deliver
from .exceptions import CommunicationError
from .fallback import with_fallback
from .models import Message

__all__ = ["SendRequest", "send", "send_many"]


def send(
    to: Any = None,
    template_key: str | None = None,
    context: dict[str, Any] | None = None,
    channel: str | None = None,
    subject: str | None = None,
    body_text: str | None = None,
    body_html: str | None = None,
    related_object: models.Model | None = None,
    message_type: str | None = None,
    idempotency_key: str | None = None,
) -> Message:
    """Render and send one message; return its saved Message.

    Raises TemplateNotFoundError, InvalidRecipientError, TemplateRenderError or
    InvalidArgumentError before anything is written or sent, and ProviderError (with the saved,
    failed ``.message``) when the provider does not accept it. To an address on the suppression
    list or opted out of the message type, it writes a ``suppressed`` Message, calls no provider
    and raises RecipientSuppressedError (RecipientOptedOutError) carrying it. With
    ``idempotency_key``, a message that already went out under that key is returned without
    sending again (a suppressed one raises again).
    """
    request = SendRequest(
        to=to,
        template_key=template_key,
        context=context,
        channel=channel,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        related_object=related_object,
        message_type=message_type,
        idempotency_key=idempotency_key,
    )
    result = send_many([request])[0]
    if isinstance(result, CommunicationError):
        raise result
    return result


def send_many(requests: Sequence[SendRequest]) -> list[Message | CommunicationError]:
    """send() for many messages at once, with the same guarantees and fewer statements.

    Returns, in the order of ``requests``, each saved Message or the CommunicationError that
    stopped it (a ProviderError carries its failed Message). One query finds earlier messages
    with the same idempotency keys, one finds suppressed and opted-out addresses (none while
    nothing is blocked; those messages are written ``suppressed`` and get a
    RecipientSuppressedError), one INSERT writes the pending rows (committed before any provider
    call), one UPDATE per outcome records the results.
    """
    batch = compose(requests)
    for channel, items in batch.pending.items():
        provider = with_fallback(batch.providers[channel], channel)
        outcomes = deliver([message for _, message in items], provider)
        for (position, _), outcome in zip(items, outcomes, strict=True):
            batch.results[position] = outcome
    return batch.results
