"""What a verified SNS message means, and which module records it: inbound.py (received email
and SMS), tracking.py (delivery events)."""

from __future__ import annotations

from django.utils import timezone

from .. import inbound, tracking
from .sns import SnsMessage, confirm_subscription


def handle(sns: SnsMessage) -> str:
    """Act on a verified SNS message; return a short word for the response and the logs.
    Raises tracking.MalformedEvent for a payload that is not what its type promises."""
    if sns.type == "SubscriptionConfirmation":
        confirm_subscription(sns)
        return "subscribed"
    if sns.type != "Notification":
        return "ignored"
    payload = sns.payload()
    if not isinstance(payload, dict):
        return "ignored"
    sent = tracking.parse_timestamp(sns.timestamp) or timezone.now()
    kind = payload.get("eventType") or payload.get("notificationType")
    if kind == "Received":
        return "received" if inbound.record_email(payload, sns.message_id, sent) else "duplicate"
    if "originationNumber" in payload and "messageBody" in payload:
        return "received" if inbound.record_sms(payload, sns.message_id, sent) else "duplicate"
    if kind in tracking.SES_EVENTS:
        event = tracking.ses_event(kind, payload, sns.message_id, sent)
    else:
        event = tracking.sms_event(payload, sns.message_id, sent)
        if event is None:
            return "ignored"
    tracking.apply(event)
    return "recorded"
