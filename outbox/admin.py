"""A read-only viewer of the outbox, with permission-gated "Retry now" and "Discard" actions.

Nobody adds, edits or deletes events here: the change page only shows them (context as indented
JSON, the recipient and related object, the messages the event produced); pruning is what
removes history. A site that wants deletion subclasses the admin with ``allow_delete = True``
(see the README). Retrying ("Retry now": a list action, and a button on a dead event's page)
needs ``outbox.retry_outboxevent``, discarding ``outbox.discard_outboxevent``; the state changes
themselves live in :mod:`outbox.operations`.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_communication.admin.helpers import AuditLogAdmin, admin_change_url, object_link

from .health import OutboxHealth, format_seconds, outbox_health
from .models import OutboxEvent, OutboxStatus
from .operations import discard, retry_now

# pre-wrap: long JSON strings and tracebacks wrap instead of widening the page on a phone.
PRE_STYLE = "white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; padding: 0;"
ERROR_PREVIEW_CHARS = 300


def skipped_text(count: int) -> str:
    return ngettext(
        "%(count)d event was skipped: dispatched and cancelled events are final, and events a "
        "relay is sending right now are left to it.",
        "%(count)d events were skipped: dispatched and cancelled events are final, and events a "
        "relay is sending right now are left to it.",
        count,
    )


@admin.register(OutboxEvent)
class OutboxEventAdmin(AuditLogAdmin, admin.ModelAdmin):
    # No "available at" column: for most rows it is a past lease end, and the last error needs
    # the width (see change_list.html).
    list_display = ("event_type", "status", "attempts", "created", "last_error_preview")
    list_filter = ("status", ("event_type", admin.AllValuesFieldListFilter), "created_at")
    search_fields = ("event_type", "idempotency_key", "ordering_key", "related_object_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    # No foreign key is shown in the list; recipients and related objects only on the detail page.
    list_select_related = False
    actions = ("retry_events", "discard_events")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "event_type",
                    "status",
                    "channel",
                    "language",
                    "idempotency_key",
                    "ordering_key",
                )
            },
        ),
        (
            _("Delivery"),
            {
                "fields": (
                    "attempts",
                    "next_attempt",
                    "dispatched_at",
                    "claim_token",
                    "last_error_full",
                )
            },
        ),
        (_("Recipient and related object"), {"fields": ("recipient_link", "related_link")}),
        (_("Context"), {"fields": ("context_json",)}),
        (_("Messages"), {"fields": ("produced_messages",)}),
        (_("Record"), {"fields": ("id", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "event_type",
        "status",
        "channel",
        "language",
        "idempotency_key",
        "ordering_key",
        "attempts",
        "next_attempt",
        "dispatched_at",
        "claim_token",
        "last_error_full",
        "recipient_link",
        "related_link",
        "context_json",
        "produced_messages",
        "id",
        "created_at",
        "updated_at",
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None or obj.status == OutboxStatus.PENDING:
            return self.fieldsets
        # A final or dead event has no next attempt: its available_at is an old lease end.
        return tuple(
            (name, {**options, "fields": [f for f in options["fields"] if f != "next_attempt"]})
            for name, options in self.fieldsets
        )

    # ------------------------------------------------------------------ health figures

    def changelist_view(self, request, extra_context=None):
        # Lazy: computed (two queries) only when the list page is rendered, not for the
        # redirect after an action.
        extra_context = {
            "outbox_health": SimpleLazyObject(lambda: health_panel(outbox_health())),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    # ------------------------------------------------------------------ permissions

    def _has_custom_permission(self, request, action: str) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")

    def has_retry_permission(self, request) -> bool:
        return self._has_custom_permission(request, "retry")

    def has_discard_permission(self, request) -> bool:
        return self._has_custom_permission(request, "discard")

    # ------------------------------------------------------------------ actions

    @admin.action(permissions=["retry"], description=_("Retry now"))
    def retry_events(self, request, queryset) -> None:
        selected = queryset.count()
        done = retry_now(queryset)
        self._report(
            request,
            done,
            selected - done,
            ngettext(
                "%(count)d event will be sent again now.",
                "%(count)d events will be sent again now.",
                done,
            ),
            skipped_text(selected - done),
        )

    @admin.action(permissions=["discard"], description=_("Discard"))
    def discard_events(self, request, queryset) -> None:
        selected = queryset.count()
        done = discard(queryset, by=request.user.get_username())
        self._report(
            request,
            done,
            selected - done,
            ngettext("%(count)d event was discarded.", "%(count)d events were discarded.", done),
            skipped_text(selected - done),
        )

    # ------------------------------------------------------------------ "Retry now" on the page

    def get_urls(self):
        opts = self.opts
        retry = path(
            "<path:object_id>/retry/",
            self.admin_site.admin_view(self.retry_view),
            name=f"{opts.app_label}_{opts.model_name}_retry",
        )
        return [retry, *super().get_urls()]

    def retry_view(self, request, object_id):
        """POST: "Retry now" for this one event, then back to its page."""
        if request.method != "POST" or not self.has_retry_permission(request):
            raise PermissionDenied
        event = get_object_or_404(OutboxEvent, pk=object_id)
        self.retry_events(request, OutboxEvent.objects.filter(pk=event.pk))
        opts = self.opts
        return HttpResponseRedirect(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[event.pk],
                current_app=self.admin_site.name,
            )
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        can_retry = (
            event is not None
            and event.status == OutboxStatus.DEAD
            and self.has_retry_permission(request)
        )
        extra_context = {"outbox_can_retry": can_retry, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def _report(self, request, done: int, skipped: int, done_text: str, skipped_text: str):
        if done:
            self.message_user(request, done_text % {"count": done}, messages.SUCCESS)
        if skipped:
            level = messages.WARNING if done else messages.ERROR
            self.message_user(request, skipped_text % {"count": skipped}, level)

    # ------------------------------------------------------------------ list columns

    @admin.display(description=_("created at"), ordering="created_at")
    def created(self, obj: OutboxEvent) -> str:
        # Compact (2025-05-01 12:00): the width goes to the last error.
        return date_format(timezone.localtime(obj.created_at), "Y-m-d H:i")

    @admin.display(description=_("last error"))
    def last_error_preview(self, obj: OutboxEvent):
        if not obj.last_error:
            return "-"
        lines = obj.last_error.strip().splitlines() or [""]
        short = Truncator(lines[0]).chars(ERROR_PREVIEW_CHARS)
        if short == obj.last_error:
            return format_html('<span class="outbox-error">{}</span>', short)
        full = Truncator(obj.last_error).chars(1000)
        return format_html('<span class="outbox-error" title="{}">{}</span>', full, short)

    # ------------------------------------------------------------------ detail fields

    @admin.display(description=_("last error"))
    def last_error_full(self, obj: OutboxEvent):
        if not obj.last_error:
            return "-"
        return format_html('<pre style="{}">{}</pre>', PRE_STYLE, obj.last_error)

    @admin.display(description=_("next attempt"))
    def next_attempt(self, obj: OutboxEvent):
        """A pending event's available_at, said as what it means (shown for pending only)."""
        when = date_format(timezone.localtime(obj.available_at), "DATETIME_FORMAT")
        if obj.claim_token is not None and obj.available_at > timezone.now():
            return _("being sent now; if the relay stops, again after its lease ends (%s)") % when
        if obj.available_at > timezone.now():
            return _("not before %s") % when
        return _("due since %s") % when

    @admin.display(description=_("context"))
    def context_json(self, obj: OutboxEvent):
        text = json.dumps(obj.context, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder)
        return format_html('<pre class="outbox-context" style="{}">{}</pre>', PRE_STYLE, text)

    @admin.display(description=_("recipient"))
    def recipient_link(self, obj: OutboxEvent):
        return object_link(self.admin_site, obj.to_content_type_id, obj.to_object_id)

    @admin.display(description=_("related object"))
    def related_link(self, obj: OutboxEvent):
        return object_link(self.admin_site, obj.related_content_type_id, obj.related_object_id)

    @admin.display(description=_("messages produced"))
    def produced_messages(self, obj: OutboxEvent):
        if obj.pk is None:
            return "-"
        from django_communication.models import Message

        rows = list(
            obj.messages()
            .order_by("created_at")
            .only("pk", "channel", "status", "to_address", "created_at")
        )
        if not rows:
            return _("None yet.")
        # Handed to a provider: failed before it did is not sent; a bounce came after it did.
        handed_over = {"sent", "delivered", "bounced", "complained"}
        sent = sum(message.status in handed_over for message in rows)
        items = []
        for message in rows:
            label = f"{message.get_channel_display()} to {message.to_address}"
            url = admin_change_url(self.admin_site, Message, message.pk)
            link = format_html('<a href="{}">{}</a>', url, label) if url else label
            items.append((message.status, link, message.get_status_display()))
        return format_html(
            # Inline margins: the admin's "form .aligned ul" indents lists by 160px otherwise.
            '<p class="outbox-sent">{}</p>'
            '<ul class="outbox-messages" style="margin: 0; padding: 0;">{}</ul>',
            _("%(sent)d of %(total)d sent") % {"sent": sent, "total": len(rows)},
            format_html_join("", '<li data-status="{}">{} ({})</li>', items),
        )


def health_panel(figures: OutboxHealth) -> dict:
    """What the list page shows above the results; a figure with a status links to its filter."""
    counts = figures.counts

    def figure(key, label, value, status=None, alert=False) -> dict:
        return {"key": key, "label": label, "value": value, "status": status, "alert": alert}

    return {
        "healthy": figures.healthy,
        "threshold": format_seconds(figures.lag_threshold_seconds),
        "figures": [
            figure("lag", _("lag"), format_seconds(figures.lag_seconds), alert=not figures.healthy),
            figure("pending", _("pending"), counts[OutboxStatus.PENDING], OutboxStatus.PENDING),
            figure("dead", _("dead"), counts[OutboxStatus.DEAD], OutboxStatus.DEAD),
            figure(
                "dead_last_hour",
                _("dead, last hour"),
                figures.dead_last_hour,
                alert=figures.dead_last_hour > 0,
            ),
            figure(
                "dispatched_per_minute",
                _("dispatched / min"),
                f"{figures.dispatched_per_minute:.1f}",
            ),
            figure(
                "dispatched",
                _("dispatched"),
                counts[OutboxStatus.DISPATCHED],
                OutboxStatus.DISPATCHED,
            ),
            figure(
                "cancelled", _("cancelled"), counts[OutboxStatus.CANCELLED], OutboxStatus.CANCELLED
            ),
        ],
    }
