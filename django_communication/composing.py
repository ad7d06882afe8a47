"""Composing messages: route → resolve the recipient and the language → render in that language
→ check idempotency and the suppression list → save, committed before any provider sees them
(delivery.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from . import attachments
from .cache import settings_row
from .choices import FINAL_STATUSES, Channel, Direction, MessageStatus
from .deferral import DEFERRED_KEY_PREFIX
from .exceptions import (
    CommunicationError,
    InvalidArgumentError,
    RecipientSuppressedError,
    TemplateRenderError,
)
from .idempotency import insert_or_fetch
from .inserts import insert_rows
from .languages import ActiveLanguages, message_language
from .models import Message
from .optout import unsubscribe_headers, unsubscribe_url
from .providers.base import BaseProvider
from .providers.registry import provider_for_channel
from .recipients import resolve_address
from .references import is_saved, link
from .rendering import CompiledTemplate, flatten_subject, get_template
from .routing import choose_channel, validate_message_type
from .signals import fire, message_suppressed
from .suppression import find_suppressed


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
    language: str | None = None
    #: Files to attach (see attachments.py); email only.
    attachments: list[Any] | None = None
    #: True: a message on a channel without attachments (SMS) goes without them instead of
    #: failing (the outbox: an event's files are for its email messages).
    optional_attachments: bool = False


@dataclass
class Composed:
    """A composed batch: per request, in order, its Message or the error that stopped it."""

    results: list[Message | CommunicationError]
    #: What to deliver: saved ``pending`` messages (with their positions in ``results``) by
    #: channel, and each channel's provider.
    pending: dict[str, list[tuple[int, Message]]] = field(default_factory=dict)
    providers: dict[str, BaseProvider] = field(default_factory=dict)
    #: Requests repeating an earlier one's idempotency key in the batch: position → the first's
    #: position, whose result they share (one message, sent once).
    repeats: dict[int, int] = field(default_factory=dict)

    def share_repeats(self) -> None:
        for position, first in self.repeats.items():
            self.results[position] = self.results[first]


def compose(requests: Sequence[SendRequest], keyed: bool = False) -> Composed:
    """Build, check and save the messages of ``requests``. One query finds earlier messages with
    the same idempotency keys (those that went out are returned as they are), at most two find
    suppressed and opted-out addresses (those messages are written ``suppressed`` and answered
    with a RecipientSuppressedError), one INSERT writes the pending rows. ``keyed``: every
    pending message without an idempotency key gets ``deferred:<its id>``."""
    earlier = earlier_messages(request.idempotency_key for request in requests)
    repeats = repeated_keys(requests)
    with ActiveLanguages() as languages:
        batch = Composed(
            results=[
                # A repeat's place holds a stand-in until share_repeats() gives it the first's
                # result.
                start(request, earlier, languages)
                if position not in repeats
                else CommunicationError("repeat")
                for position, request in enumerate(requests)
            ],
            repeats=repeats,
        )
    results = batch.results
    # New and retried messages, and suppressed ones asked for again under their key.
    checked = [
        (position, item)
        for position, item in enumerate(results)
        if isinstance(item, Message)
        and (item.status == MessageStatus.SUPPRESSED or item.status not in FINAL_STATUSES)
    ]
    held: list[RecipientSuppressedError] = []
    holds = find_suppressed([message for _, message in checked])
    for (position, message), hold in zip(checked, holds, strict=True):
        if message.status == MessageStatus.SUPPRESSED:  # answered before: answered again
            results[position] = hold or RecipientSuppressedError(message.error, message=message)
        elif hold is not None:
            message.status, message.error = MessageStatus.SUPPRESSED, hold.reason
            results[position] = hold
            held.append(hold)
    for position, message in checked:
        if results[position] is not message:
            continue
        try:
            if message.channel not in batch.providers:
                batch.providers[message.channel] = provider_for_channel(message.channel)
            if message.pending_attachments:
                store_attachments(message, batch.providers[message.channel])
        except CommunicationError as exc:
            results[position] = exc
            continue
        batch.pending.setdefault(message.channel, []).append((position, message))
    going = [message for items in batch.pending.values() for _, message in items]
    if keyed:
        for message in going:
            message.idempotency_key = (
                message.idempotency_key or f"{DEFERRED_KEY_PREFIX}{message.pk}"
            )
    save_pending(going + [hold.message for hold in held if isinstance(hold.message, Message)])
    for hold in held:
        fire(message_suppressed, message=hold.message, reason=hold.reason)
    return batch


def repeated_keys(requests: Sequence[SendRequest]) -> dict[int, int]:
    """Position → the position of the first request with the same idempotency key, for each
    request repeating an earlier one's key (one message, sent once, shared)."""
    firsts: dict[str, int] = {}
    return {
        position: firsts[key]
        for position, key in enumerate(request.idempotency_key for request in requests)
        if key and firsts.setdefault(key, position) != position
    }


def start(
    request: SendRequest, earlier: dict[str, Message], languages: ActiveLanguages
) -> Message | CommunicationError:
    """The earlier message with the request's idempotency key, or a new one."""
    message = earlier.get(request.idempotency_key) if request.idempotency_key else None
    if message is not None:
        if message.status not in FINAL_STATUSES:  # sent again: its headers as a new one's
            message.extra_headers = headers_for(message, unsubscribe_url_for(message))
        return message
    try:
        return build_message(request, languages)
    except CommunicationError as exc:
        return exc


def earlier_messages(keys: Iterable[str | None]) -> dict[str, Message]:
    wanted = [key for key in keys if key]
    if not wanted:
        return {}
    return {m.idempotency_key: m for m in Message.objects.filter(idempotency_key__in=wanted)}


def build_message(request: SendRequest, languages: ActiveLanguages) -> Message:
    """An unsaved Message, validated and rendered (templates in the message's language, made
    active through ``languages``). Touches no provider."""
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
    files = attachments.normalise(request.attachments) if request.attachments else []
    if files and request.optional_attachments and channel not in attachments.ATTACHMENT_CHANNELS:
        files = []
    attachments.check_channel(files, channel)
    address = resolve_address(to, channel)
    language = message_language(request.language, to)
    config = settings_row()
    message = Message(
        channel=channel,
        message_type=message_type or "",
        to_address=address,
        template=template.row if template else None,
        idempotency_key=request.idempotency_key or None,
        language=language,
        from_address=sender_for(channel, config),
    )
    full_context = {"recipient": to, **(context or {})}
    url = unsubscribe_url_for(message)
    if url and "unsubscribe_url" not in full_context:
        full_context["unsubscribe_url"] = url
    message.extra_headers = headers_for(message, url)
    variant = template.for_language(language, channel) if template else None
    if variant is not None:
        languages.use(language)
    fill_content(message, variant, full_context, request)
    if files:
        attachments.check_size(files)
        message.pending_attachments = tuple(files)
    link(message, "recipient", to if is_saved(to) else None)
    if related_object is not None:
        if not is_saved(related_object):
            raise InvalidArgumentError("related_object must be a saved model instance.")
        link(message, "related", related_object)
    return message


def sender_for(channel: str, config: Any) -> str:
    """The From of a new outbound message on ``channel``, from the settings singleton."""
    if channel == Channel.EMAIL:
        return config.email_from
    if channel == Channel.VOICE:
        return config.voice_caller_id or config.sms_origination_number
    return config.sms_origination_number or config.sms_sender_id


def store_attachments(message: Message, provider: BaseProvider) -> None:
    """Check the message against its provider's size limit, then store its files (each once)
    and list them on the message; nothing is stored for a message that fails the check."""
    files = list(message.pending_attachments)
    limit = getattr(provider, "max_message_bytes", None)
    if limit is not None:
        body = len(message.body_text.encode()) + len(message.body_html.encode())
        size = attachments.encoded_size(body, files)
        if size > limit:
            raise InvalidArgumentError(
                f"With its attachments this email is about {size} bytes encoded, more than the "
                f"{limit} the {provider.name!r} provider accepts."
            )
    message.attachments = [stored.as_dict() for stored in attachments.store(files)]
    message.pending_attachments = ()


def unsubscribe_url_for(message: Message) -> str | None:
    if message.channel != Channel.EMAIL or message.direction != Direction.OUTBOUND:
        return None
    return unsubscribe_url(message.channel, message.to_address, message.message_type)


def headers_for(message: Message, url: str | None) -> dict[str, str]:
    return unsubscribe_headers(url) if message.channel == Channel.EMAIL else {}


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
        field = "voice_body" if message.channel == Channel.VOICE else "sms_body"
        message.body_text = pick(body_text, field)
        missing = [] if message.body_text.strip() else ["body"]
        if message.channel == Channel.VOICE and template is not None and body_text is None:
            message.choices = dict(template.row.voice_choices or {})
    if missing:
        what = f"template {template.name!r}" if template else "this ad-hoc message"
        error = TemplateRenderError if template else InvalidArgumentError
        raise error(f"The {message.channel} from {what} has an empty {' and '.join(missing)}.")


def save_pending(messages: list[Message]) -> None:
    """Write new messages (pending, or suppressed) and earlier failed ones back to pending (or
    suppressed): committed before any provider call in autocommit mode, in the caller's
    transaction when the send is deferred to its commit."""
    new = [message for message in messages if message._state.adding]
    retried = [message for message in messages if not message._state.adding]
    if new:
        using = router.db_for_write(Message)
        try:
            with transaction.atomic(using=using):
                insert_rows(new, using)
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
    stored = insert_or_fetch(message, "idempotency_key")
    if stored is message:
        return
    # Another process is sending this key right now or crashed mid-send: send it again (at
    # least once), on the row that process wrote.
    message.pk = stored.pk
    message._state.adding = False
    if message.status == MessageStatus.SUPPRESSED:
        Message.objects.filter(pk=message.pk).update(
            status=message.status, error=message.error, updated_at=timezone.now()
        )
