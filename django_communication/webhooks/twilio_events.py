"""What a verified Twilio status callback means: a tracking.Event for the message or call it
names. Message statuses: queued, sending, sent, delivered, undelivered, failed...; call
statuses: queued, initiated, ringing, in-progress, completed, busy, no-answer, failed, canceled.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from django.http import QueryDict
from django.utils import timezone

from ..choices import Channel, EventType
from ..tracking import Event, MalformedEvent

MESSAGE_EVENTS = {
    "delivered": EventType.SMS_DELIVERED,
    "undelivered": EventType.SMS_FAILED,
    "failed": EventType.SMS_FAILED,
    "canceled": EventType.SMS_FAILED,
}
CALL_EVENTS = {
    "completed": EventType.CALL_COMPLETED,
    "busy": EventType.CALL_FAILED,
    "no-answer": EventType.CALL_FAILED,
    "failed": EventType.CALL_FAILED,
    "canceled": EventType.CALL_FAILED,
}
#: A status is a short lowercase word: anything else is not Twilio's.
MAX_STATUS = 20


def status_event(params: QueryDict) -> Event:
    """The Event of a message or call status callback; MalformedEvent if it is neither."""
    if params.get("CallSid") and params.get("CallStatus"):
        sid, status = params["CallSid"], params["CallStatus"]
        event_type = CALL_EVENTS.get(status, EventType.CALL_STATUS)
        channel = Channel.VOICE
    elif params.get("MessageSid") and (params.get("MessageStatus") or params.get("SmsStatus")):
        sid = params["MessageSid"]
        status = params.get("MessageStatus") or params["SmsStatus"]
        event_type = MESSAGE_EVENTS.get(status, EventType.SMS_STATUS)
        channel = Channel.SMS
    else:
        raise MalformedEvent("Neither a call nor a message status (CallSid, MessageSid).")
    if len(status) > MAX_STATUS or not status.replace("-", "").isalpha():
        raise MalformedEvent(f"Status {status[:40]!r} is not a Twilio status.")
    detail = status
    if params.get("ErrorCode"):
        detail = f"{status} (error {params['ErrorCode'][:10]})"
    return Event(
        provider_message_id=sid[:255],
        event_type=event_type,
        occurred_at=occurred(params.get("Timestamp")),
        # One per status: a callback sent again (or replayed) adds nothing.
        notification_id=f"twilio:{status}"[:100],
        payload=dict(params.items()),
        detail=detail[:255],
        channel=channel,
    )


def occurred(value: str | None) -> datetime:
    """Twilio's RFC 2822 ``Timestamp`` (call callbacks), else now."""
    if value:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return timezone.now()
