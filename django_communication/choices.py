"""The library's vocabulary: channels, message types, statuses. Plain choices, importing nothing
from the package, so every layer may use them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    VOICE = "voice", _("Voice call")


class MessageType(models.TextChoices):
    TRANSACTIONAL = "transactional", _("Transactional")
    REMINDER = "reminder", _("Reminder")
    ALERT = "alert", _("Alert")
    ANNOUNCEMENT = "announcement", _("Announcement")


class MessageStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    DELIVERED = "delivered", _("Delivered")
    BOUNCED = "bounced", _("Bounced")
    COMPLAINED = "complained", _("Complained")
    SUPPRESSED = "suppressed", _("Suppressed")
    RECEIVED = "received", _("Received")


class Direction(models.TextChoices):
    OUTBOUND = "outbound", _("Outbound")
    INBOUND = "inbound", _("Inbound")


class EventType(models.TextChoices):
    """What a status history row records. SES event publishing types keep their SES names."""

    SEND = "send", _("Send")
    DELIVERY = "delivery", _("Delivery")
    BOUNCE = "bounce", _("Bounce")
    COMPLAINT = "complaint", _("Complaint")
    REJECT = "reject", _("Reject")
    DELIVERY_DELAY = "delivery_delay", _("Delivery delay")
    RENDERING_FAILURE = "rendering_failure", _("Rendering failure")
    OPEN = "open", _("Open")
    CLICK = "click", _("Click")
    SUBSCRIPTION = "subscription", _("Subscription")
    SMS_DELIVERED = "sms_delivered", _("SMS delivered")
    SMS_FAILED = "sms_failed", _("SMS failed")
    SMS_STATUS = "sms_status", _("SMS status")
    RECEIVED = "received", _("Received")
    CALL_COMPLETED = "call_completed", _("Call completed")
    CALL_FAILED = "call_failed", _("Call failed")
    CALL_STATUS = "call_status", _("Call status")
    KEYPAD_REPLY = "keypad_reply", _("Keypad reply")


class SuppressionReason(models.TextChoices):
    BOUNCE = "bounce", _("Permanent bounce")
    COMPLAINT = "complaint", _("Complaint")
    MANUAL = "manual", _("Added by staff")


#: Message types a recipient may opt out of; transactional and alert messages always go out.
OPT_OUT_TYPES = frozenset({MessageType.ANNOUNCEMENT.value, MessageType.REMINDER.value})

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
