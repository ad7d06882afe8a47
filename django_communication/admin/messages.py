"""Message admin: a read-only audit log (nobody adds, edits or deletes rows here; a subclass
with ``allow_delete = True`` lets superusers delete, see the README), with the status history
(provider events, raw payloads) as an inline."""

from __future__ import annotations

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..models import Message, MessageEvent
from .attachments import AttachmentsMixin
from .helpers import PRE_STYLE, AuditLogAdmin, object_link, sandboxed_html


class MessageEventInline(admin.TabularInline):
    """The message's status history, oldest first: read-only."""

    model = MessageEvent
    verbose_name = _("status history")
    verbose_name_plural = _("status history")
    fields = ("occurred_at", "event_type", "status", "detail", "received_at", "raw_payload")
    readonly_fields = fields
    ordering = ("occurred_at", "id")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("payload"))
    def raw_payload(self, obj: MessageEvent):
        text = json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html(
            '<details><summary>{}</summary><pre style="{}">{}</pre></details>',
            _("show"),
            PRE_STYLE,
            text,
        )


@admin.register(Message)
class MessageAdmin(AuditLogAdmin, AttachmentsMixin, admin.ModelAdmin):
    """The audit log: read-only. ``allow_delete = True`` in a subclass lets superusers delete."""

    inlines = (MessageEventInline,)

    list_display = (
        "created_at",
        "channel",
        "direction",
        "status",
        "message_type",
        "to_address",
        "subject",
        "provider",
    )
    list_filter = ("status", "channel", "message_type", "direction", "created_at")
    search_fields = ("to_address", "subject", "provider_message_id")
    date_hierarchy = "created_at"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "sent_at",
                    "channel",
                    "direction",
                    "status",
                    "message_type",
                    "template",
                    "language",
                    "idempotency_key",
                )
            },
        ),
        (
            _("Addresses"),
            {"fields": ("to_address", "from_address", "recipient_link", "related_link")},
        ),
        (
            _("Content"),
            {"fields": ("subject", "body_text", "body_html", "html_preview", "choices")},
        ),
        (_("Replies"), {"fields": ("in_reply_to", "reply_links")}),
        (_("Provider"), {"fields": ("provider", "provider_message_id", "error")}),
    )
    # Every field shown is read-only: the audit log is never edited here.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    @admin.display(description=_("recipient"))
    def recipient_link(self, obj: Message):
        return object_link(self.admin_site, obj.recipient_content_type_id, obj.recipient_object_id)

    @admin.display(description=_("related object"))
    def related_link(self, obj: Message):
        return object_link(self.admin_site, obj.related_content_type_id, obj.related_object_id)

    @admin.display(description=_("replies"))
    def reply_links(self, obj: Message):
        """The keypad replies to a call (at most one per call)."""
        replies = list(obj.replies.all()[:10]) if obj.pk else []
        if not replies:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:django_communication_message_change", args=[r.pk]), r.body_text)
                for r in replies
            ),
        )

    @admin.display(description=_("HTML as rendered"))
    def html_preview(self, obj: Message):
        return sandboxed_html(obj.body_html) if obj.body_html else "-"
