"""send(): route → resolve the recipient → render → write the Message → provider → record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from .cache import get_settings
from .conf import comm_settings
from .exceptions import (
    CommunicationError,
    InvalidArgumentError,
    ProviderError,
    RecipientOptedOutError,
    RecipientSuppressedError,
    TemplateRenderError,
)
from .fallback import deliver_with_fallback
from .models import Channel, Message, MessageStatus
from .optout import unsubscribe_url
from .outcomes import OutcomeWriter
from .providers.base import BaseProvider
from .providers.registry import provider_for_channel
from .ratelimit import pacer
from .recipients import resolve_address
from .rendering import CompiledTemplate, flatten_subject, get_template
from .routing import choose_channel, validate_message_type
from .signals import fire, message_sent, message_suppressed
from .suppression import OPTED_OUT, Block, find_blocked

BATCH_SIZE = 500

#: Statuses that mean the message already went out: an idempotent send returns it unchanged.
FINAL_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.BOUNCED,
        MessageStatus.COMPLAINED,
        MessageStatus.SUPPRESSED,
    }
)


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


@dataclass
class SendRequest:
    """The arguments of one send(), for send_many()."""

    to: Any = None
    template_key: str | None = None
    context: dict[str, Any] | None = None
    channel: str | None = None
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    related_object: models.Model | None = None
    message_type: str | None = None
    idempotency_key: str | None = None


def send_many(requests: Sequence[SendRequest]) -> list[Message | CommunicationError]:
    """send() for many messages at once, with the same guarantees and fewer statements.

    Returns, in the order of ``requests``, each saved Message or the CommunicationError that
    stopped it (a ProviderError carries its failed Message). One query finds earlier messages
    with the same idempotency keys, one finds suppressed and opted-out addresses (none while
    nothing is blocked; those messages are written ``suppressed`` and get a
    RecipientSuppressedError), one INSERT writes the pending rows (committed before any provider
    call), one UPDATE per outcome records the results.
    """
    results: list[Message | CommunicationError | None] = [None] * len(requests)
    earlier = earlier_messages(request.idempotency_key for request in requests)
    candidates: list[tuple[int, Message]] = []
    for index, request in enumerate(requests):
        message = earlier.get(request.idempotency_key) if request.idempotency_key else None
        if message is not None and message.status in FINAL_STATUSES:
            results[index] = (
                suppressed_error(message, message.error)
                if message.status == MessageStatus.SUPPRESSED
                else message
            )
            continue
        try:
            if message is None:
                message = build_message(request)
        except CommunicationError as exc:
            results[index] = exc
            continue
        candidates.append((index, message))
    blocked = find_blocked([message for _, message in candidates])
    pending: list[tuple[int, Message, BaseProvider]] = []
    held: list[tuple[int, Message, Block]] = []
    for index, message in candidates:
        block = blocked.get(id(message))
        if block is not None:
            message.status, message.error = MessageStatus.SUPPRESSED, block.reason
            held.append((index, message, block))
            continue
        try:
            provider = provider_for_channel(message.channel)
        except CommunicationError as exc:
            results[index] = exc
            continue
        pending.append((index, message, provider))
    save_pending([message for _, message, _ in pending] + [message for _, message, _ in held])
    for index, message, block in held:
        results[index] = suppressed_error(message, block.reason)
        fire(message_suppressed, message=message, reason=block.reason)
    by_provider: dict[int, list[tuple[int, Message]]] = defaultdict(list)
    providers = {}
    for index, message, provider in pending:
        by_provider[id(provider)].append((index, message))
        providers[id(provider)] = provider
    fallback = comm_settings.fallback if by_provider else None
    for key, items in by_provider.items():
        messages = [message for _, message in items]
        chain = fallback.get(messages[0].channel) if fallback else None
        for index, outcome in zip(
            (index for index, _ in items),
            deliver_with_fallback(messages, providers[key], chain)
            if chain
            else deliver(messages, providers[key]),
            strict=True,
        ):
            results[index] = outcome
    return results  # type: ignore[return-value]


def suppressed_error(message: Message, reason: str) -> RecipientSuppressedError:
    cls = RecipientOptedOutError if reason.startswith(OPTED_OUT) else RecipientSuppressedError
    return cls(reason, message=message)


def earlier_messages(keys: Iterable[str | None]) -> dict[str, Message]:
    wanted = [key for key in keys if key]
    if not wanted:
        return {}
    return {m.idempotency_key: m for m in Message.objects.filter(idempotency_key__in=wanted)}


def build_message(request: SendRequest) -> Message:
    """An unsaved Message, validated and rendered. Touches no provider."""
    to, context, related_object = request.to, request.context, request.related_object
    template_key, message_type = request.template_key, request.message_type
    if context is not None and not isinstance(context, dict):
        raise InvalidArgumentError(f"context must be a dict, not {type(context).__name__}.")
    template = get_template(template_key) if template_key else None
    if message_type:
        validate_message_type(message_type)
    elif template is not None:
        message_type = template.row.message_type
    channel = choose_channel(request.channel, message_type)
    address = resolve_address(to, channel)
    config = get_settings()
    message = Message(
        channel=channel,
        message_type=message_type or "",
        to_address=address,
        template=template.row if template else None,
        idempotency_key=request.idempotency_key or None,
        from_address=(
            config.email_from
            if channel == Channel.EMAIL
            else config.sms_origination_number or config.sms_sender_id
        ),
    )
    full_context = {"recipient": to, **(context or {})}
    if channel == Channel.EMAIL and "unsubscribe_url" not in full_context:
        url = unsubscribe_url(channel, address, message.message_type)
        if url:
            full_context["unsubscribe_url"] = url
    fill_content(message, template, full_context, request)
    link(message, "recipient", to if is_saved(to) else None)
    if related_object is not None:
        if not is_saved(related_object):
            raise InvalidArgumentError("related_object must be a saved model instance.")
        link(message, "related", related_object)
    return message


def is_saved(obj: Any) -> bool:
    return isinstance(obj, models.Model) and obj.pk is not None and not obj._state.adding


def fill_content(
    message: Message,
    template: CompiledTemplate | None,
    context: dict[str, Any],
    request: SendRequest,
) -> None:
    subject, body_text, body_html = request.subject, request.body_text, request.body_html

    def pick(override: str | None, field: str) -> str:
        if override is not None:
            return override
        return template.render(field, context) if template else ""

    if message.channel == Channel.EMAIL:
        message.subject = flatten_subject(pick(subject, "email_subject"))
        message.body_text = pick(body_text, "email_body_text")
        message.body_html = pick(body_html, "email_body_html")
        missing = [
            name
            for name, value in (
                ("subject", message.subject),
                ("body", message.body_text or message.body_html),
            )
            if not value.strip()
        ]
    else:
        message.body_text = pick(body_text, "sms_body")
        missing = [] if message.body_text.strip() else ["body"]
    if missing:
        what = f"template {template.row.key!r}" if template else "this ad-hoc message"
        error = TemplateRenderError if template else InvalidArgumentError
        raise error(f"The {message.channel} from {what} has an empty {' and '.join(missing)}.")


def link(message: Message, prefix: str, obj: models.Model | None) -> None:
    if obj is None:
        return
    setattr(message, f"{prefix}_content_type", ContentType.objects.get_for_model(obj))
    setattr(message, f"{prefix}_object_id", str(obj.pk))


def save_pending(messages: list[Message]) -> None:
    """Write new messages (pending, or suppressed) and earlier failed ones back to pending (or
    suppressed), committed before any provider call (in autocommit mode)."""
    new = [message for message in messages if message._state.adding]
    retried = [message for message in messages if not message._state.adding]
    if new:
        try:
            with transaction.atomic():
                Message.objects.bulk_create(new, batch_size=BATCH_SIZE)
        except IntegrityError:
            # A concurrent send took one of the idempotency keys: insert one by one.
            for message in new:
                save_one(message)
    now = timezone.now()
    again = [message for message in retried if message.status != MessageStatus.SUPPRESSED]
    if again:
        Message.objects.filter(pk__in=[m.pk for m in again]).update(
            status=MessageStatus.PENDING, error="", updated_at=now
        )
        for message in again:
            message.status, message.error, message.updated_at = MessageStatus.PENDING, "", now
    for message in retried:
        if message.status == MessageStatus.SUPPRESSED:  # rare: failed before, suppressed now
            message.updated_at = now
            Message.objects.filter(pk=message.pk).update(
                status=message.status, error=message.error, updated_at=now
            )


def save_one(message: Message) -> None:
    message._state.adding = True
    try:
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        # Another process is sending this key right now or crashed mid-send: send it again
        # (at least once), on the row that process wrote.
        existing = Message.objects.get(idempotency_key=message.idempotency_key)
        message.pk = existing.pk
        message._state.adding = False
        if message.status == MessageStatus.SUPPRESSED:
            Message.objects.filter(pk=message.pk).update(
                status=message.status, error=message.error, updated_at=timezone.now()
            )


def deliver(
    messages: list[Message],
    provider: BaseProvider,
    *,
    fall_through: bool = False,
    failed_before: list[str] | None = None,
) -> list[Message | ProviderError]:
    """Hand saved messages to the provider, recording each outcome as soon as it is known, so a
    crash can leave at most the message in flight unrecorded.

    Each outcome is durable before the next provider call; where the write is pipelined
    (outcomes.py), the provider prepares the next message while it travels. With a rate limit
    for the provider (RATE_LIMITS), each message first waits for its send slot. With
    ``fall_through`` (a fallback provider follows), retryable failures are returned unrecorded,
    marked ``fell_through``; ``failed_before`` holds, per message, what failed on earlier
    providers, for the record.
    """
    outcomes: list[Message | ProviderError] = []
    pace = pacer(provider.name)
    with provider.session(), OutcomeWriter(pipeline=len(messages) > 1) as writer:
        for position, message in enumerate(messages):
            if pace is not None:
                writer.settle()
                pace()
            with suppress(Exception):  # what prepare() raises, send() meets and reports
                provider.prepare(message)
            writer.settle()
            before = failed_before[position] if failed_before else ""
            outcomes.append(deliver_one(message, provider, before, fall_through, writer))
    return outcomes


def deliver_one(
    message: Message,
    provider: BaseProvider,
    failed_before: str = "",
    fall_through: bool = False,
    writer: OutcomeWriter | None = None,
) -> Message | ProviderError:
    try:
        provider_message_id = provider.send(message)
    except Exception as exc:
        retryable = exc.retryable if isinstance(exc, ProviderError) else True
        description = exc.description if isinstance(exc, ProviderError) else repr(exc)
        error = ProviderError(
            description, retryable=retryable, provider=provider.name, message=message
        )
        error.__cause__ = exc
        if fall_through and retryable:
            error.fell_through = True  # the next provider gets it; nothing recorded yet
            return error
        record(
            message,
            provider,
            writer,
            status=MessageStatus.FAILED,
            error=f"{failed_before}; {error}" if failed_before else description,
        )
        return error
    record(
        message,
        provider,
        writer,
        status=MessageStatus.SENT,
        provider_message_id=str(provider_message_id or ""),
        sent_at=timezone.now(),
        error=f"{failed_before}; sent by {provider.name}" if failed_before else "",
    )
    if message_sent.receivers and writer is not None:
        writer.settle()  # receivers may query the connection
    fire(message_sent, message=message)
    return message


def record(
    message: Message, provider: BaseProvider, writer: OutcomeWriter | None = None, **fields: Any
) -> None:
    fields["provider"] = provider.name
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(message, name, value)
    (writer or OutcomeWriter()).write(message, fields)  # a plain writer leaves nothing in flight
