from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_communication.base_models import UUIDTimestampedModel

from .conf import DEFERRED_SEND
from .context import ContextDecoder, ContextEncoder

#: Every message an outbox rule sends has an idempotency key starting with this (a deferred
#: send() relayed by the outbox keeps its own key: see DEFERRED_SEND).
MESSAGE_KEY_ROOT = "outbox:"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DISPATCHED = "dispatched", _("Dispatched")
    DEAD = "dead", _("Dead")
    CANCELLED = "cancelled", _("Cancelled")


class OutboxEvent(UUIDTimestampedModel):
    """One thing that happened, written in the producer's transaction, waiting for the relay.

    A claimed event stays ``pending``: the claim moves ``available_at`` forward by the lease and
    sets ``claim_token``; if the relay dies, the event becomes due again when the lease ends.

    Events sharing an ``ordering_key`` are dispatched one at a time, in ``ordering_seq`` order:
    the relay claims one only when no earlier event of its key is still pending.
    """

    event_type = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    # Dates, decimals, UUIDs... come back as they went in (see outbox.context).
    context = models.JSONField(
        default=dict, blank=True, encoder=ContextEncoder, decoder=ContextDecoder
    )
    channel = models.CharField(max_length=10, blank=True)
    language = models.CharField(max_length=15, blank=True)
    # References to files stored by django_communication.attachments, never the files.
    attachments = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    available_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    ordering_key = models.CharField(max_length=255, null=True, blank=True)
    # Emit order within the ordering key: nanoseconds since the epoch, strictly increasing within
    # a process (created_at can tie within a bulk INSERT). Null without an ordering key.
    ordering_seq = models.BigIntegerField(null=True, blank=True, editable=False)

    # No index of their own on the content type keys: every INSERT pays for each index, and the
    # composite index below serves the lookups.
    to_content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,  # a generic reference: no lock on django_content_type per write
    )
    to_object_id = models.CharField(max_length=64, blank=True)
    related_content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,  # a generic reference: no lock on django_content_type per write
    )
    related_object_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("retry_outboxevent", "Can retry outbox events"),
            ("discard_outboxevent", "Can discard outbox events"),
        ]
        constraints = [
            # A constraint rather than unique=True: no second (pattern) index on PostgreSQL.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                name="outbox_unique_idempotency_key",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]
        indexes = [
            # The relay's claim is a range scan of this index, in available_at order, whatever
            # the backlog. Not a partial index: SQLite cannot use one whose condition the query
            # states with a bound parameter (status = %s), and would sort every pending row.
            models.Index(fields=["status", "available_at"], name="outbox_due_idx"),
            # "Is an earlier event of this key still pending?" Only keyed rows, so events
            # without a key pay nothing for it. Status is a column, not part of the condition:
            # SQLite cannot use a partial index whose condition the query states with a bound
            # parameter (status = %s), only one it states literally (IS NOT NULL).
            models.Index(
                fields=["ordering_key", "status", "ordering_seq"],
                name="outbox_ordering_idx",
                condition=models.Q(ordering_key__isnull=False),
            ),
            models.Index(fields=["status", "created_at"], name="outbox_status_created_idx"),
            models.Index(
                fields=["related_content_type", "related_object_id"], name="outbox_related_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.status})"

    @property
    def message_key_prefix(self) -> str:
        """Every Message this event produced has an idempotency key starting with this."""
        return f"{MESSAGE_KEY_ROOT}{self.pk}:"

    def messages(self):
        from django_communication.models import Message

        if self.event_type == DEFERRED_SEND:
            return Message.objects.filter(idempotency_key__in=self.context.get("messages") or [])
        # The first condition is the predicate of the partial index outbox.0008 creates on
        # PostgreSQL, stated as the index states it, so that the planner may use the index.
        return Message.objects.filter(idempotency_key__startswith=MESSAGE_KEY_ROOT).filter(
            idempotency_key__startswith=self.message_key_prefix
        )
