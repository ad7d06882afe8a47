from __future__ import annotations

from collections.abc import Mapping
from email.utils import formataddr
from types import MappingProxyType

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _
from solo.models import SingletonModel

from .base_models import UUIDTimestampedModel
from .choices import (  # re-exported: the choices have always been importable from here
    Channel,
    Direction,
    EventType,
    MessageStatus,
    MessageType,
    SuppressionReason,
)
from .template_models import MessageTemplate, MessageTemplateVariant, TemplateContent

__all__ = [
    "Channel",
    "CommunicationSettings",
    "Direction",
    "EventType",
    "Message",
    "MessageEvent",
    "MessageStatus",
    "MessageTemplate",
    "MessageTemplateVariant",
    "MessageType",
    "OptOut",
    "SendRateSlot",
    "Suppression",
    "SuppressionReason",
    "TemplateContent",
]


class CommunicationSettings(SingletonModel):
    """Site-wide delivery settings, edited in the admin.

    Blank AWS credentials mean boto3's default credential chain (IAM role, environment), which is
    the recommended set-up: secrets in the database are readable by anyone with a backup.
    """

    email_provider = models.CharField(max_length=100, default="console")
    sms_provider = models.CharField(max_length=100, default="console")
    default_channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.EMAIL
    )
    email_from_address = models.EmailField(default="noreply@example.com")
    email_from_name = models.CharField(max_length=200, blank=True)
    email_reply_to = models.EmailField(blank=True)
    sms_sender_id = models.CharField(
        max_length=11, blank=True, help_text=_("Alphanumeric sender id, where the country allows.")
    )
    sms_origination_number = models.CharField(
        max_length=20, blank=True, help_text=_("E.164 number SMS are sent from, e.g. +15555550100.")
    )
    ses_region = models.CharField(max_length=30, default="us-east-1")
    ses_access_key_id = models.CharField(max_length=128, blank=True)
    ses_secret_access_key = models.CharField(max_length=256, blank=True)
    ses_configuration_set = models.CharField(max_length=64, blank=True)
    sns_region = models.CharField(max_length=30, blank=True, help_text=_("Blank: the SES region."))
    sns_access_key_id = models.CharField(max_length=128, blank=True)
    sns_secret_access_key = models.CharField(max_length=256, blank=True)
    voice_provider = models.CharField(max_length=100, default="console")
    voice_caller_id = models.CharField(
        max_length=20,
        blank=True,
        help_text=_("E.164 number calls are made from. Blank: the SMS origination number."),
    )
    twilio_account_sid = models.CharField(max_length=64, blank=True)
    twilio_auth_token = models.CharField(max_length=128, blank=True)

    class Meta:
        verbose_name = _("communication settings")
        verbose_name_plural = _("communication settings")

    def __str__(self) -> str:
        return "Communication settings"

    @property
    def email_from(self) -> str:
        if self.email_from_name:
            return formataddr((self.email_from_name, self.email_from_address))
        return self.email_from_address


class Message(UUIDTimestampedModel):
    """The audit log: one row per message sent or received, bodies as rendered."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.OUTBOUND
    )
    status = models.CharField(
        max_length=20, choices=MessageStatus.choices, default=MessageStatus.PENDING
    )
    message_type = models.CharField(max_length=20, choices=MessageType.choices, blank=True)
    to_address = models.CharField(max_length=254)
    from_address = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    provider = models.CharField(max_length=100, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    #: Voice: the keypad choices the call offered (digit -> label). A keypad reply: the one
    #: pressed.
    choices = models.JSONField(default=dict, blank=True)
    in_reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        help_text=_("The outbound message this inbound one answers (a keypad reply to a call)."),
    )
    language = models.CharField(
        max_length=15, blank=True, help_text=_("The language the message was rendered in.")
    )
    attachments = models.JSONField(
        default=list,
        blank=True,
        help_text=_("The attached files: name, MIME type, size, SHA-256 and storage path."),
    )

    recipient_content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # the composite index below serves the lookups; one index less to write
        db_constraint=False,  # a generic reference: no lock on django_content_type per write
    )
    recipient_object_id = models.CharField(max_length=64, blank=True)
    recipient = GenericForeignKey("recipient_content_type", "recipient_object_id")

    related_content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # the composite index below serves the lookups; one index less to write
        db_constraint=False,  # a generic reference: no lock on django_content_type per write
    )
    related_object_id = models.CharField(max_length=64, blank=True)
    related_object = GenericForeignKey("related_content_type", "related_object_id")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("download_attachments", "Can download message attachments")]
        indexes = [
            models.Index(
                fields=["related_content_type", "related_object_id", "-created_at"],
                name="comm_message_related_idx",
            ),
            models.Index(
                fields=["recipient_content_type", "recipient_object_id"],
                name="comm_message_recipient_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="comm_message_status_idx"),
            # Plain B-trees: db_index/unique on a CharField would add a second, LIKE-only index
            # on PostgreSQL, one more to write per message and per outcome.
            models.Index(fields=["provider_message_id"], name="comm_message_provider_id_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], name="comm_message_unique_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.to_address} ({self.status})"

    #: Headers a provider adds to this email beyond From/To/Subject: ``List-Unsubscribe`` and
    #: ``List-Unsubscribe-Post`` (RFC 8058) on announcement emails when ``SITE_URL`` is set.
    #: Set when send() builds the message, not stored; empty for SMS and inbound messages.
    extra_headers: Mapping[str, str] = MappingProxyType({})
    #: The files send() was given, checked but not stored yet (attachments.py): stored and
    #: listed in ``attachments`` when the message is saved. Not stored itself.
    pending_attachments: tuple = ()


class MessageEvent(models.Model):
    """The status history of a message: one row per provider event (SNS notification), raw
    payload included. ``notification_id`` (the SNS MessageId) makes a redelivery a no-op."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=30, choices=EventType.choices)
    occurred_at = models.DateTimeField(help_text=_("When the provider says it happened."))
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=20,
        choices=MessageStatus.choices,
        blank=True,
        help_text=_("The message status this event moved it to; blank if it changed nothing."),
    )
    detail = models.CharField(max_length=255, blank=True)
    notification_id = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "notification_id"], name="comm_event_once_per_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Suppression(models.Model):
    """An address nothing is sent to any more, whatever the message type."""

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254, help_text=_("Lower-cased email or E.164 phone."))
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["address", "channel"], name="comm_suppression_unique")
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class OptOut(models.Model):
    """A recipient's opt-out of one message type on one channel (announcements, reminders)."""

    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254, help_text=_("Lower-cased email or E.164 phone."))
    message_type = models.CharField(max_length=20, choices=MessageType.choices)
    source = models.CharField(
        max_length=30, blank=True, help_text=_("link, one-click, admin, api, ...")
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("opt-out")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["address", "channel", "message_type"], name="comm_optout_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.address}: no {self.message_type} by {self.channel}"


class SendRateSlot(models.Model):
    """The next free send slot of a provider named in ``COMMUNICATION["RATE_LIMITS"]``, shared
    by every process that sends (see ratelimit.py). Written with one UPDATE per message."""

    provider = models.CharField(max_length=100, primary_key=True)
    next_at = models.FloatField(
        default=0.0, help_text=_("Unix time (database clock) of the next free send slot.")
    )

    class Meta:
        verbose_name = _("send rate slot")

    def __str__(self) -> str:
        return f"{self.provider}: next slot at {self.next_at:.3f}"
