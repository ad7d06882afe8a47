"""Admin for templates (with a rendered preview), the message audit log and the settings singleton.

* MessageTemplate: the change page previews every field rendered with the template's
  ``sample_context``, through the same compile/render code send() uses. HTML is shown in a
  sandboxed ``<iframe srcdoc>``: no script runs and nothing reaches the admin's origin.
* Message: a read-only audit log. Nobody adds or edits rows here; superusers may delete them.
* Message: the status history (provider events, raw payloads) is an inline of the message page.
* Suppression: the addresses nothing is sent to; staff with the delete permission remove one.
* OptOut: who opted out of what; staff add or remove them.
* CommunicationSettings: AWS secret keys are write-only. The form never renders them back; a blank
  field keeps the stored value and a "clear" box removes it.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape, format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from solo.admin import SingletonModelAdmin

from .models import (
    Channel,
    CommunicationSettings,
    Message,
    MessageEvent,
    MessageTemplate,
    OptOut,
    Suppression,
)
from .providers.registry import provider_paths
from .rendering import FIELDS_BY_CHANNEL, CompiledTemplate, flatten_subject

# --------------------------------------------------------------------------- helpers

FIELD_LABELS = {
    "email_subject": _("Email subject"),
    "email_body_text": _("Email text"),
    "email_body_html": _("Email HTML"),
    "sms_body": _("SMS"),
}

PRE_STYLE = "white-space: pre-wrap; margin: 0; max-width: 60em;"
IFRAME_STYLE = (
    "width: 100%; max-width: 60em; height: 20em; border: 1px solid #ccc; background: #fff;"
)
ERROR_STYLE = "color: #ba2121; white-space: pre-wrap; margin: 0;"


def sandboxed_html(html: str):
    """HTML shown in an iframe with every sandbox restriction: no scripts, forms or same origin.

    The source is escaped into the attribute (always: template output is a SafeString, which
    format_html alone would pass through); the browser unescapes it back into the iframe's own
    document, so the markup renders but can never touch the admin page.
    """
    return format_html(
        '<iframe sandbox="" referrerpolicy="no-referrer" style="{}" srcdoc="{}"'
        ' title="HTML preview"></iframe>',
        IFRAME_STYLE,
        escape(html),
    )


def render_preview(row: MessageTemplate) -> list[tuple[str, str, str | None, str | None]]:
    """Each non-empty field of ``row`` rendered with its ``sample_context``.

    Returns ``(field, label, rendered, error)`` tuples; exactly one of rendered / error is set.
    ``rendered`` is the engine's output, marked safe for every field: escape it to display it.
    Compiles the row as it stands (saved or not) without the template cache, and renders through
    ``CompiledTemplate.render`` (which compiles with ``compile_field``), exactly as send() does.
    """
    context = row.sample_context if row.sample_context is not None else {}
    fields = [f for channel in (Channel.EMAIL, Channel.SMS) for f in FIELDS_BY_CHANNEL[channel]]
    results: list[tuple[str, str, str | None, str | None]] = []
    compiled = CompiledTemplate(row)  # compiles each field on first use, uncached
    for field in fields:
        if not getattr(row, field):
            continue
        label = str(FIELD_LABELS.get(field, field))
        if not isinstance(context, dict):
            error = f"Sample context must be a JSON object, not {type(context).__name__}."
            results.append((field, label, None, error))
            continue
        try:
            rendered = compiled.render(field, dict(context))
        except Exception as exc:  # TemplateRenderError, or anything a custom tag raises
            results.append((field, label, None, str(exc)))
            continue
        if field == "email_subject":
            rendered = flatten_subject(rendered)
        results.append((field, label, rendered, None))
    return results


def admin_change_url(admin_site: admin.AdminSite, model, pk) -> str | None:
    """The change page of ``pk`` in ``admin_site``, or None when the model is not registered."""
    if model is None or not admin_site.is_registered(model):
        return None
    opts = model._meta
    try:
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[pk],
            current_app=admin_site.name,
        )
    except NoReverseMatch:
        return None


def object_link(admin_site: admin.AdminSite, content_type_id: int | None, object_id: str):
    """A generic reference as "type #id: object", linked to the object's admin page if any."""
    if not content_type_id:
        return "-"
    content_type = ContentType.objects.get_for_id(content_type_id)  # cached: no query
    model = content_type.model_class()
    if model is None:
        return f"{content_type.app_label}.{content_type.model} #{object_id} (model not installed)"
    name = model._meta.verbose_name
    try:
        obj = model._base_manager.get(pk=object_id)
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError):
        return f"{name} #{object_id} (deleted)"
    label = f"{name} #{object_id}: {obj}"
    url = admin_change_url(admin_site, model, obj.pk)
    return format_html('<a href="{}">{}</a>', url, label) if url else label


# --------------------------------------------------------------------------- MessageTemplate


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "message_type", "is_active", "updated_at")
    list_filter = ("message_type", "is_active", "updated_at")
    search_fields = ("key", "name", "email_subject", "sms_body")
    readonly_fields = ("preview", "created_at", "updated_at")
    prepopulated_fields = {"key": ("name",)}
    fieldsets = (
        (None, {"fields": ("key", "name", "message_type", "is_active")}),
        (_("Email"), {"fields": ("email_subject", "email_body_text", "email_body_html")}),
        (_("SMS"), {"fields": ("sms_body",)}),
        (
            _("Preview"),
            {
                "fields": ("sample_context", "preview"),
                "description": _(
                    "The fields rendered with the sample context (a JSON object), as send() "
                    "renders them. Save and continue editing to refresh it."
                ),
            },
        ),
        (_("History"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    @admin.display(description=_("rendered preview"))
    def preview(self, obj: MessageTemplate | None):
        if obj is None or obj._state.adding:
            return _("Save the template to see a preview.")
        results = render_preview(obj)
        if not results:
            return _("Every field is empty.")
        rows = []
        for field, label, rendered, error in results:
            if error is not None:
                body = format_html(
                    '<p class="errornote" style="{}">{}</p>', ERROR_STYLE, escape(error)
                )
            elif field == "email_body_html":
                body = sandboxed_html(rendered)
            else:
                # escape(), not format_html's conditional escaping: rendered text is a SafeString.
                body = format_html('<pre style="{}">{}</pre>', PRE_STYLE, escape(rendered))
            rows.append((field, label, body))
        return format_html(
            '<div class="comm-preview">{}</div>',
            format_html_join(
                "",
                '<div class="comm-preview-field" data-field="{}" style="margin-bottom: 1em;">'
                "<strong>{}</strong>{}</div>",
                rows,
            ),
        )


# --------------------------------------------------------------------------- Message


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
class MessageAdmin(admin.ModelAdmin):
    """The audit log: read-only, deletable by superusers only."""

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
                    "idempotency_key",
                )
            },
        ),
        (
            _("Addresses"),
            {"fields": ("to_address", "from_address", "recipient_link", "related_link")},
        ),
        (_("Content"), {"fields": ("subject", "body_text", "body_html", "html_preview")}),
        (_("Provider"), {"fields": ("provider", "provider_message_id", "error")}),
    )
    readonly_fields = (
        "created_at",
        "updated_at",
        "sent_at",
        "channel",
        "direction",
        "status",
        "message_type",
        "template",
        "idempotency_key",
        "to_address",
        "from_address",
        "recipient_link",
        "related_link",
        "subject",
        "body_text",
        "body_html",
        "html_preview",
        "provider",
        "provider_message_id",
        "error",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    @admin.display(description=_("recipient"))
    def recipient_link(self, obj: Message):
        return object_link(self.admin_site, obj.recipient_content_type_id, obj.recipient_object_id)

    @admin.display(description=_("related object"))
    def related_link(self, obj: Message):
        return object_link(self.admin_site, obj.related_content_type_id, obj.related_object_id)

    @admin.display(description=_("HTML as rendered"))
    def html_preview(self, obj: Message):
        return sandboxed_html(obj.body_html) if obj.body_html else "-"


# --------------------------------------------------------------------------- suppression, opt-outs


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
        from .suppression import normalize

        obj.address = normalize(obj.channel, obj.address)
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
            from .conf import OPT_OUT_TYPES

            kwargs["choices"] = [c for c in db_field.choices if c[0] in OPT_OUT_TYPES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        from .suppression import normalize

        obj.address = normalize(obj.channel, obj.address)
        super().save_model(request, obj, form, change)


# --------------------------------------------------------------------------- settings

SECRET_FIELDS = ("ses_secret_access_key", "sns_secret_access_key")


class CommunicationSettingsForm(forms.ModelForm):
    """Secret keys are write-only: blank keeps the stored value, the clear box removes it."""

    clear_ses_secret_access_key = forms.BooleanField(
        required=False, label=_("Clear the stored SES secret access key")
    )
    clear_sns_secret_access_key = forms.BooleanField(
        required=False, label=_("Clear the stored SNS secret access key")
    )

    class Meta:
        model = CommunicationSettings
        fields = (
            "default_channel",
            "email_provider",
            "email_from_address",
            "email_from_name",
            "email_reply_to",
            "sms_provider",
            "sms_sender_id",
            "sms_origination_number",
            "ses_region",
            "ses_configuration_set",
            "ses_access_key_id",
            "ses_secret_access_key",
            "sns_region",
            "sns_access_key_id",
            "sns_secret_access_key",
        )
        widgets = {
            name: forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            for name in SECRET_FIELDS
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name not in self.fields:
                continue
            stored = bool(getattr(self.instance, name, ""))
            # The stored secret is no initial value: it is never sent to the browser, and a blank
            # submission then counts as "unchanged" in the admin history.
            self.initial[name] = ""
            self.fields[name].help_text = (
                _("A value is stored. Leave blank to keep it; type a new one to replace it.")
                if stored
                else _("Not set. Blank: boto3 finds credentials itself (recommended).")
            )
        names = ", ".join(sorted(provider_paths()))
        for name, channel in (("email_provider", "email"), ("sms_provider", "SMS")):
            if name in self.fields:
                self.fields[name].help_text = _(
                    "Provider that sends %(channel)s. Known providers: %(names)s. Add your own in "
                    "settings.COMMUNICATION['PROVIDERS']."
                ) % {"channel": channel, "names": names}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if name not in self.fields:
                continue
            new_value = cleaned.get(name) or ""
            if cleaned.get(f"clear_{name}"):
                if new_value:
                    self.add_error(
                        name, _("Type a new secret or tick the clear box below, not both.")
                    )
                cleaned[name] = ""
            elif not new_value:
                cleaned[name] = getattr(self.instance, name, "")
        return cleaned


@admin.register(CommunicationSettings)
class CommunicationSettingsAdmin(SingletonModelAdmin):
    form = CommunicationSettingsForm
    fieldsets = (
        (None, {"fields": ("default_channel",)}),
        (
            _("Email"),
            {
                "fields": (
                    "email_provider",
                    "email_from_address",
                    "email_from_name",
                    "email_reply_to",
                )
            },
        ),
        (_("SMS"), {"fields": ("sms_provider", "sms_sender_id", "sms_origination_number")}),
        (
            _("Amazon SES"),
            {
                "fields": (
                    "ses_region",
                    "ses_configuration_set",
                    "ses_access_key_id",
                    "ses_secret_access_key",
                    "clear_ses_secret_access_key",
                ),
                "description": _(
                    "Leave the keys blank to use boto3's default credentials (environment, IAM "
                    "role): secrets stored here are readable by anyone with a database backup."
                ),
            },
        ),
        (
            _("Amazon SNS"),
            {
                "fields": (
                    "sns_region",
                    "sns_access_key_id",
                    "sns_secret_access_key",
                    "clear_sns_secret_access_key",
                )
            },
        ),
    )
