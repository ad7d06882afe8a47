"""Applying provider events to messages: history rows, status moves, suppressions.

SNS delivers at least once and in any order, so:

* every event is one ``MessageEvent`` row, unique per (message, SNS MessageId): a redelivered
  notification inserts nothing and changes nothing;
* a status only ever moves up ``RANK``: a late Delivery never overwrites a Bounce or a
  Complaint, and a Bounce after a Delivery (an asynchronous bounce) still counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from .choices import Channel, Direction, EventType, MessageStatus, SuppressionReason
from .models import Message, MessageEvent
from .recipients import comparable_address
from .signals import address_suppressed, fire, message_status_changed
from .suppression import suppress

#: Statuses an event may move a message to, by precedence. A message moves only upwards.
RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.FAILED: 3,
    MessageStatus.BOUNCED: 4,
    MessageStatus.COMPLAINED: 5,
}

#: SES event publishing (``eventType``) and feedback notification (``notificationType``) names.
SES_EVENTS = {
    "Send": EventType.SEND,
    "Delivery": EventType.DELIVERY,
    "Bounce": EventType.BOUNCE,
    "Complaint": EventType.COMPLAINT,
    "Reject": EventType.REJECT,
    "DeliveryDelay": EventType.DELIVERY_DELAY,
    "Rendering Failure": EventType.RENDERING_FAILURE,
    "Open": EventType.OPEN,
    "Click": EventType.CLICK,
    "Subscription": EventType.SUBSCRIPTION,
}

STATUS_FOR = {
    EventType.DELIVERY: MessageStatus.DELIVERED,
    EventType.BOUNCE: MessageStatus.BOUNCED,
    EventType.COMPLAINT: MessageStatus.COMPLAINED,
    EventType.REJECT: MessageStatus.FAILED,
    EventType.RENDERING_FAILURE: MessageStatus.FAILED,
    EventType.SMS_DELIVERED: MessageStatus.DELIVERED,
    EventType.SMS_FAILED: MessageStatus.FAILED,
    EventType.CALL_COMPLETED: MessageStatus.DELIVERED,
    EventType.CALL_FAILED: MessageStatus.FAILED,
}

#: The SES payload key holding each event's details (timestamp, recipients, types).
SES_SECTIONS = {
    EventType.DELIVERY: "delivery",
    EventType.BOUNCE: "bounce",
    EventType.COMPLAINT: "complaint",
    EventType.REJECT: "reject",
    EventType.DELIVERY_DELAY: "deliveryDelay",
    EventType.RENDERING_FAILURE: "failure",
    EventType.OPEN: "open",
    EventType.CLICK: "click",
    EventType.SEND: "send",
    EventType.SUBSCRIPTION: "subscription",
}


class MalformedEvent(ValueError):
    """A verified notification whose payload is not what its type promises."""


def parse_timestamp(value: Any, default: datetime | None = None) -> datetime | None:
    """A provider timestamp (ISO 8601, SNS log format, epoch milliseconds) as an aware datetime;
    ``default`` if it is none of those."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return default
    if not isinstance(value, str) or not value:
        return default
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return default
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Event:
    """A provider event, normalised: which message, what happened, when."""

    provider_message_id: str
    event_type: str
    occurred_at: datetime
    notification_id: str
    payload: dict[str, Any]
    detail: str = ""
    #: (reason, addresses) to put on the suppression list.
    suppress: tuple[str, list[str]] | None = None
    channel: str = Channel.EMAIL
    #: Set by apply(): the messages it matched, and how many history rows it added (0 for a
    #: notification applied before).
    matched: int = 0
    recorded: int = 0
    changes: list[tuple[Message, str, str, MessageEvent]] = field(default_factory=list)


def ses_event(kind: str, payload: dict[str, Any], notification_id: str, sent: datetime) -> Event:
    """An Event from an SES event-publishing record or feedback notification."""
    mail = payload.get("mail")
    if not isinstance(mail, dict) or not isinstance(mail.get("messageId"), str):
        raise MalformedEvent("SES event without mail.messageId.")
    event_type = SES_EVENTS[kind]
    section = payload.get(SES_SECTIONS[event_type]) or {}
    if not isinstance(section, dict):
        raise MalformedEvent(f"SES {kind} event with a malformed {SES_SECTIONS[event_type]}.")
    occurred = parse_timestamp(section.get("timestamp")) or parse_timestamp(mail.get("timestamp"))
    event = Event(
        provider_message_id=mail["messageId"],
        event_type=event_type,
        occurred_at=occurred or sent,
        notification_id=notification_id,
        payload=payload,
    )
    if event_type == EventType.BOUNCE:
        bounce_type = str(section.get("bounceType", ""))
        event.detail = f"{bounce_type} / {section.get('bounceSubType', '')}".strip(" /")
        if bounce_type == "Permanent":
            event.suppress = (
                SuppressionReason.BOUNCE,
                recipients(section.get("bouncedRecipients")),
            )
    elif event_type == EventType.COMPLAINT:
        event.detail = str(section.get("complaintFeedbackType", ""))
        event.suppress = (
            SuppressionReason.COMPLAINT,
            recipients(section.get("complainedRecipients")),
        )
    elif event_type == EventType.DELIVERY_DELAY:
        event.detail = str(section.get("delayType", ""))
    elif event_type == EventType.REJECT:
        event.detail = str(section.get("reason", ""))
    elif event_type == EventType.RENDERING_FAILURE:
        event.detail = str(section.get("errorMessage", ""))
    event.detail = event.detail[:255]
    return event


#: End User Messaging SMS (pinpoint-sms-voice-v2) event types that are not failures.
SMS_NOT_FAILED = frozenset({"TEXT_DELIVERED", "TEXT_SUCCESSFUL", "TEXT_PENDING", "TEXT_QUEUED"})


def sms_event(payload: dict[str, Any], notification_id: str, sent: datetime) -> Event | None:
    """An Event from an SMS delivery status record, or None if ``payload`` is none.

    Two shapes: AWS End User Messaging SMS event destinations (``eventType`` ``TEXT_*``,
    ``messageId``, ``isFinal``) and SNS SMS delivery status logs forwarded to the topic
    (``notification.messageId``, ``status`` ``SUCCESS`` / ``FAILURE``). Either matches only
    where its message id is the one the provider returned.
    """
    kind = payload.get("eventType")
    if isinstance(kind, str) and kind.startswith("TEXT_"):
        message_id = payload.get("messageId")
        if kind == "TEXT_DELIVERED":
            event_type = EventType.SMS_DELIVERED
        elif payload.get("isFinal") is True and kind not in SMS_NOT_FAILED:
            event_type = EventType.SMS_FAILED
        else:
            event_type = EventType.SMS_STATUS
        occurred = parse_timestamp(payload.get("eventTimestamp"))
        detail = str(payload.get("messageStatusDescription") or kind)
    elif isinstance(payload.get("notification"), dict) and payload.get("status") in (
        "SUCCESS",
        "FAILURE",
    ):
        message_id = payload["notification"].get("messageId")
        success = payload["status"] == "SUCCESS"
        event_type = EventType.SMS_DELIVERED if success else EventType.SMS_FAILED
        occurred = parse_timestamp(payload["notification"].get("timestamp"))
        delivery = payload.get("delivery") if isinstance(payload.get("delivery"), dict) else {}
        detail = str(delivery.get("providerResponse") or payload["status"])
    else:
        return None
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEvent("SMS status without a message id.")
    return Event(
        provider_message_id=message_id,
        event_type=event_type,
        occurred_at=occurred or sent,
        notification_id=notification_id,
        payload=payload,
        detail=detail[:255],
        channel=Channel.SMS,
    )


def recipients(entries: Any) -> list[str]:
    if not isinstance(entries, list):
        raise MalformedEvent("Bounce or complaint without a recipient list.")
    found = []
    for entry in entries:
        address = entry.get("emailAddress") if isinstance(entry, dict) else None
        if isinstance(address, str) and parseaddr(address)[1]:
            found.append(parseaddr(address)[1])
    return found


def apply(event: Event) -> Event:
    """Record ``event`` against the outbound messages with its provider message id, move their
    status if it ranks higher, suppress addresses; then fire the signals. Idempotent."""
    with transaction.atomic():
        messages = list(
            Message.objects.select_for_update()
            .filter(provider_message_id=event.provider_message_id, direction=Direction.OUTBOUND)
            .order_by("created_at")
        )
        new_rows = 0
        for message in messages:
            new_status = STATUS_FOR.get(event.event_type, "")
            if new_status and RANK[new_status] <= RANK.get(message.status, len(RANK)):
                new_status = ""  # a late or lesser event: history only
            row = MessageEvent(
                message=message,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                status=new_status,
                detail=event.detail,
                notification_id=event.notification_id,
                payload=event.payload,
            )
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue  # this notification was applied already
            new_rows += 1
            if new_status:
                old_status = message.status
                message.status, message.updated_at = new_status, timezone.now()
                Message.objects.filter(pk=message.pk).update(
                    status=new_status, updated_at=message.updated_at
                )
                event.changes.append((message, old_status, new_status, row))
        event.matched, event.recorded = len(messages), new_rows
        added = []
        if event.suppress and (new_rows or not messages):
            reason, addresses = event.suppress
            source = messages[0] if messages else None
            # In one order everywhere: two bounces listing [a, b] and [b, a] would otherwise
            # each hold one unique-index entry and wait for the other's (a deadlock).
            for address in sorted({comparable_address(event.channel, a) for a in addresses}):
                row = suppress(
                    event.channel, address, reason, source_message=source, detail=event.detail
                )
                if row is not None:
                    added.append(row)
    for message, old_status, new_status, row in event.changes:
        fire(
            message_status_changed,
            message=message,
            old_status=old_status,
            new_status=new_status,
            event=row,
        )
    for suppression in added:
        fire(address_suppressed, suppression=suppression)
    return event
