"""Suppression admin (the addresses nothing is sent to; staff with the delete permission remove
one) and OptOut admin (who opted out of what; staff add or remove them)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..choices import OPT_OUT_TYPES
from ..models import OptOut, Suppression
from ..recipients import comparable_address


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses nothing is sent to. Deleting one (with the delete permission) sends to it again;
    staff may add one by hand (reason "Added by staff")."""

    list_display = ("address", "channel", "reason", "created_at", "detail")
    list_filter = ("reason", "channel", "created_at")
    search_fields = ("address", "detail")
    date_hierarchy = "created_at"
    fields = ("channel", "address", "reason", "detail", "source_link", "created_at")
    readonly_fields = ("source_link", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # a row is a fact: remove it, do not rewrite it
            return (*self.fields,)
        return self.readonly_fields

    def get_changeform_initial_data(self, request):
        return {"reason": "manual", **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        obj.address = comparable_address(obj.channel, obj.address)
        super().save_model(request, obj, form, change)

    @admin.display(description=_("source message"))
    def source_link(self, obj: Suppression):
        if obj is None or obj.source_message_id is None:
            return "-"
        url = reverse(
            "admin:django_communication_message_change",
            args=[obj.source_message_id],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.source_message_id)


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    list_display = ("address", "channel", "message_type", "source", "created_at")
    list_filter = ("channel", "message_type", "source", "created_at")
    search_fields = ("address",)
    date_hierarchy = "created_at"
    fields = ("channel", "address", "message_type", "source", "created_at")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request, obj=None):
        return (*self.fields,) if obj is not None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        return {"source": "admin", **super().get_changeform_initial_data(request)}

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "message_type":
            kwargs["choices"] = [c for c in db_field.choices if c[0] in OPT_OUT_TYPES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        obj.address = comparable_address(obj.channel, obj.address)
        super().save_model(request, obj, form, change)
