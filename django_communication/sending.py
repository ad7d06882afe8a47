"""send() and send_many(): compose the messages (composing.py) and deliver them, per channel,
through its provider and fallback chain (streaming.py: lanes.py, delivery.py, fallback.py) — at
once, or, inside a transaction, after its commit (deferral.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from django.db import models, router, transaction

from .composing import SendRequest, compose
from .conf import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from .deferral import NOW, deferring, registered_deferrer
from .exceptions import CommunicationError, InvalidArgumentError
from .models import Message
from .streaming import send_stream

__all__ = ["SendRequest", "send", "send_many"]

#: What delivery changes on a Message: copied onto the instances a deferred send() returned.
OUTCOME_FIELDS = ("status", "provider", "provider_message_id", "error", "sent_at", "updated_at")


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
    in_transaction: str | None = None,
    language: str | None = None,
    attachments: list[Any] | None = None,
) -> Message:
    """Render and send one message; return its saved Message.

    Raises TemplateNotFoundError, InvalidRecipientError, TemplateRenderError or
    InvalidArgumentError before anything is written or sent, and ProviderError (with the saved,
    failed ``.message``) when the provider does not accept it. To an address on the suppression
    list or opted out of the message type, it writes a ``suppressed`` Message, calls no provider
    and raises RecipientSuppressedError (RecipientOptedOutError) carrying it. With
    ``idempotency_key``, a message that already went out under that key is returned without
    sending again (a suppressed one raises again).

    Inside ``transaction.atomic()`` the message is, by default, written ``pending`` in the
    caller's transaction and sent after its commit (never if it rolls back); ``in_transaction``
    ("defer", "now" or "raise") overrides ``COMMUNICATION["IN_TRANSACTION"]`` for this call.

    The message is rendered in ``language`` (a code from ``settings.LANGUAGES``), else in the
    recipient's language, else in ``settings.LANGUAGE_CODE``, from the template's variant in that
    language or the nearest one (pt-br → pt → the default); see languages.py.

    ``attachments`` (email only): ``(filename, content, mimetype)`` tuples, ``Attachment``
    objects (inline images with ``content_id``), Django files or paths in the attachment
    storage; stored once each and listed on ``message.attachments`` (attachments.py).
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
        language=language,
        attachments=attachments,
    )
    result = send_many([request], in_transaction=in_transaction)[0]
    assert result is not None  # without a stop, every request starts
    if isinstance(result, CommunicationError):
        raise result
    return result


def send_many(
    requests: Sequence[SendRequest],
    in_transaction: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: Callable[[], bool] | None = None,
) -> list[Message | CommunicationError | None]:
    """send() for many messages at once, with the same guarantees and fewer statements.

    Returns, in the order of ``requests``, each saved Message or the CommunicationError that
    stopped it (a ProviderError carries its failed Message). The requests are composed in chunks
    (streaming.py): per chunk, one query finds earlier messages with the same idempotency keys,
    one finds suppressed and opted-out addresses (none while nothing is blocked; those messages
    are written ``suppressed`` and get a RecipientSuppressedError), one INSERT writes the pending
    rows (committed before any provider call). Up to ``concurrency`` provider calls are in
    flight at once (delivery lanes: threads; 1 sends one at a time) while the next chunk is
    composed, and the outcomes that arrive together are written in one transaction. If the
    process dies, at most 2 x ``concurrency`` messages (one with ``concurrency=1``) may have
    been accepted by the provider without their outcome recorded.

    ``stop``: a callable asked before each chunk is composed; once it returns True, nothing new
    starts, the messages already composed are sent, and each request not started has None as
    its result. Inside a transaction, as send() (``stop`` and ``concurrency`` apply after the
    commit only to the deferrer's own send).
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError(
            f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {concurrency!r}."
        )
    using = router.db_for_write(Message)
    if not deferring(in_transaction, using):
        return send_stream(requests, concurrency, stop)
    batch = compose(requests, keyed=True)
    waiting = [message for items in batch.pending.values() for _, message in items]
    if waiting:
        (registered_deferrer() or defer_on_commit)(waiting, using)
    batch.share_repeats()
    return list(batch.results)


def defer_on_commit(messages: list[Message], using: str) -> None:
    """The deferrer without a durable one registered: send in this process, right after the
    commit. A crash in between leaves the rows ``pending`` (send_pending() finds them)."""
    transaction.on_commit(partial(send_deferred, messages), using=using, robust=True)


def send_deferred(messages: list[Message]) -> list[Message | CommunicationError]:
    """Send deferred messages, found by their idempotency keys (one that already went out is
    left as it is), and show each outcome on the instance send() returned."""
    results = send_many(
        [SendRequest(idempotency_key=message.idempotency_key) for message in messages],
        in_transaction=NOW,
    )
    for message, result in zip(messages, results, strict=True):
        sent = result if isinstance(result, Message) else getattr(result, "message", None)
        if isinstance(sent, Message) and sent.pk == message.pk:
            for name in OUTCOME_FIELDS:
                setattr(message, name, getattr(sent, name))
    return results
