"""send(): route → resolve the recipient → render → write the Message → provider → record."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from .cache import get_settings
from .exceptions import InvalidArgumentError, ProviderError, TemplateRenderError
from .models import Channel, Message, MessageStatus
from .providers.registry import provider_for_channel
from .recipients import resolve_address
from .rendering import CompiledTemplate, flatten_subject, get_template
from .routing import choose_channel, validate_message_type

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
    failed ``.message``) when the provider does not accept it. With ``idempotency_key``, a
    message that already went out under that key is returned without sending again.
    """
    message = build_message(
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
    provider = provider_for_channel(message.channel)
    message = save_pending(message)
    if message.status in FINAL_STATUSES:
        return message
    deliver(message, provider)
    return message


def build_message(
    *,
    to: Any,
    template_key: str | None,
    context: dict[str, Any] | None,
    channel: str | None,
    subject: str | None,
    body_text: str | None,
    body_html: str | None,
    related_object: models.Model | None,
    message_type: str | None,
    idempotency_key: str | None,
) -> Message:
    """An unsaved Message, validated and rendered. Touches no provider."""
    if context is not None and not isinstance(context, dict):
        raise InvalidArgumentError(f"context must be a dict, not {type(context).__name__}.")
    template = get_template(template_key) if template_key else None
    if message_type:
        validate_message_type(message_type)
    elif template is not None:
        message_type = template.row.message_type
    channel = choose_channel(channel, message_type)
    address = resolve_address(to, channel)
    config = get_settings()
    message = Message(
        channel=channel,
        message_type=message_type or "",
        to_address=address,
        template=template.row if template else None,
        idempotency_key=idempotency_key or None,
        from_address=(
            config.email_from
            if channel == Channel.EMAIL
            else config.sms_origination_number or config.sms_sender_id
        ),
    )
    full_context = {"recipient": to, **(context or {})}
    fill_content(message, template, full_context, subject, body_text, body_html)
    link(message, "recipient", to if isinstance(to, models.Model) and to.pk is not None else None)
    if related_object is not None:
        if not isinstance(related_object, models.Model) or related_object.pk is None:
            raise InvalidArgumentError("related_object must be a saved model instance.")
        link(message, "related", related_object)
    return message


def fill_content(
    message: Message,
    template: CompiledTemplate | None,
    context: dict[str, Any],
    subject: str | None,
    body_text: str | None,
    body_html: str | None,
) -> None:
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


def save_pending(message: Message) -> Message:
    """Write the pending row, or return the row an earlier send with this key wrote."""
    if not message.idempotency_key:
        message.save(force_insert=True)
        return message
    existing = Message.objects.filter(idempotency_key=message.idempotency_key).first()
    if existing is None:
        try:
            with transaction.atomic():
                message.save(force_insert=True)
            return message
        except IntegrityError:
            existing = Message.objects.get(idempotency_key=message.idempotency_key)
    if existing.status == MessageStatus.FAILED:
        # A retry: the provider gets a pending row, as on the first attempt.
        record(existing, status=MessageStatus.PENDING, error="")
    return existing


def deliver(message: Message, provider) -> None:
    """Hand a saved message to the provider and record the outcome on its row."""
    message.provider = provider.name
    try:
        provider_message_id = provider.send(message)
    except Exception as exc:
        retryable = exc.retryable if isinstance(exc, ProviderError) else True
        description = exc.description if isinstance(exc, ProviderError) else repr(exc)
        record(message, status=MessageStatus.FAILED, error=description)
        raise ProviderError(
            description, retryable=retryable, provider=provider.name, message=message
        ) from exc
    record(
        message,
        status=MessageStatus.SENT,
        provider_message_id=str(provider_message_id or ""),
        sent_at=timezone.now(),
        error="",
    )


def record(message: Message, **fields: Any) -> None:
    fields["provider"] = message.provider
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(message, name, value)
    Message.objects.filter(pk=message.pk).update(**fields)
