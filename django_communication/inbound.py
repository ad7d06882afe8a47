"""Received messages: SES receipt rules (SNS action), SNS and Twilio two-way SMS, recorded as
``Message(direction=inbound, status=received)``.

A redelivered notification records nothing new: the row's idempotency key is
``inbound:<provider>:<provider message id>``. The sender is linked as ``message.recipient``
(the other party of the conversation) when ``COMMUNICATION["INBOUND_SENDER_RESOLVER"]`` returns
a saved model instance for the address. An SMS that is only an opt-out keyword (STOP,
UNSUBSCRIBE...) opts the sender out of every SMS type one can opt out of; START opts back in.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from datetime import datetime
from email.utils import getaddresses, parseaddr
from typing import Any

from django.db import IntegrityError, transaction

from .choices import OPT_OUT_TYPES, Channel, Direction, EventType, MessageStatus
from .conf import comm_settings
from .models import Message, MessageEvent
from .optout import opt_in, opt_out
from .references import is_saved, link
from .signals import fire, message_received
from .tracking import MalformedEvent, parse_timestamp


def record_email(payload: dict[str, Any], notification_id: str, sent: datetime) -> Message | None:
    """An SES receipt notification (``notificationType: Received``, SNS action)."""
    mail = payload.get("mail")
    if not isinstance(mail, dict) or not isinstance(mail.get("messageId"), str):
        raise MalformedEvent("SES receipt without mail.messageId.")
    headers = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    sender = first_address(headers.get("from")) or parseaddr(str(mail.get("source", "")))[1]
    to = first_address(mail.get("destination")) or first_address(headers.get("to"))
    text, html = bodies(payload)
    message = Message(
        channel=Channel.EMAIL,
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        from_address=sender[:320],
        to_address=to[:254],
        subject=str(headers.get("subject") or "")[:255],
        body_text=text,
        body_html=html,
        provider="ses",
        provider_message_id=mail["messageId"][:255],
        sent_at=parse_timestamp(mail.get("timestamp"), sent),
        idempotency_key=f"inbound:ses:{mail['messageId']}"[:255],
    )
    return save(message, payload, notification_id, sender)


def record_sms(payload: dict[str, Any], notification_id: str, sent: datetime) -> Message | None:
    """An SNS two-way SMS notification (``originationNumber``, ``messageBody``...)."""
    message_id = payload.get("inboundMessageId")
    sender = payload.get("originationNumber")
    if not isinstance(message_id, str) or not isinstance(sender, str):
        raise MalformedEvent("Inbound SMS without inboundMessageId or originationNumber.")
    return received_sms(
        "sns",
        message_id,
        sender,
        str(payload.get("destinationNumber") or ""),
        str(payload.get("messageBody") or ""),
        payload,
        notification_id,
        sent,
    )


def received_sms(
    provider: str,
    message_id: str,
    sender: str,
    to: str,
    body: str,
    payload: dict[str, Any],
    notification_id: str,
    sent: datetime,
) -> Message | None:
    """Record an SMS received through ``provider`` and apply its STOP/START keyword; None if
    it was recorded before."""
    message = Message(
        channel=Channel.SMS,
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        from_address=sender[:320],
        to_address=to[:254],
        body_text=body,
        provider=provider,
        provider_message_id=message_id[:255],
        sent_at=sent,
        idempotency_key=f"inbound:{provider}:{message_id}"[:255],
    )
    saved = save(message, payload, notification_id, sender)
    if saved is not None:
        apply_keyword(sender, saved.body_text)
    return saved


#: Whole-message replies (any case, surrounding spaces ignored) that opt the sender out of, or
#: back into, every SMS type one can opt out of — the carriers' standard keywords.
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "ARRET"}
)
START_KEYWORDS = frozenset({"START", "UNSTOP", "SUBSCRIBE", "OPTIN", "OPT-IN"})


def apply_keyword(sender: str, body: str) -> None:
    keyword = body.strip().upper()
    if keyword in STOP_KEYWORDS:
        for message_type in sorted(OPT_OUT_TYPES):
            opt_out(sender, Channel.SMS, message_type, source="sms-keyword")
    elif keyword in START_KEYWORDS:
        for message_type in sorted(OPT_OUT_TYPES):
            opt_in(sender, Channel.SMS, message_type)


def save(
    message: Message,
    payload: dict[str, Any],
    notification_id: str,
    sender: str,
    event_type: str = EventType.RECEIVED,
) -> Message | None:
    """Save a new inbound message and its history row; None if it was recorded before."""
    resolver = comm_settings.inbound_sender_resolver
    if resolver is not None and sender:
        found = resolver(sender, message.channel)  # SNS gives phone numbers in E.164
        if is_saved(found):
            link(message, "recipient", found)
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            MessageEvent.objects.create(
                message=message,
                event_type=event_type,
                occurred_at=message.sent_at or message.created_at,
                status=MessageStatus.RECEIVED,
                notification_id=notification_id,
                payload=payload,
            )
    except IntegrityError:
        return None  # redelivered: recorded already
    fire(message_received, message=message)
    return message


def first_address(value: Any) -> str:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ""
    for _, address in getaddresses([str(item) for item in value]):
        if address:
            return address
    return ""


def bodies(payload: dict[str, Any]) -> tuple[str, str]:
    """(text, html) from the raw email in ``content`` (absent when the mail went to S3)."""
    content = payload.get("content")
    if not isinstance(content, str) or not content:
        return "", ""
    receipt = payload.get("receipt") if isinstance(payload.get("receipt"), dict) else {}
    action = receipt.get("action") if isinstance(receipt.get("action"), dict) else {}
    if action.get("encoding") == "BASE64":
        try:
            raw = base64.b64decode(content)
        except (binascii.Error, ValueError) as exc:
            raise MalformedEvent("Inbound email content is not base64.") from exc
    else:
        raw = content.encode("utf-8", "surrogateescape")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return part_text(parsed, "plain"), part_text(parsed, "html")


def part_text(parsed: Any, subtype: str) -> str:
    try:
        part = parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""
    except (LookupError, KeyError, ValueError, AttributeError):
        return ""
