"""MessageTemplate admin: the change page previews every field rendered with the template's
``sample_context``, through the same compile/render code send() uses. HTML is shown in a
sandboxed ``<iframe srcdoc>``: no script runs and nothing reaches the admin's origin. Translated
variants are edited inline, each with its preview rendered in its language."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import translation
from django.utils.html import escape, format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..choices import Channel
from ..models import MessageTemplate, MessageTemplateVariant, TemplateContent
from ..rendering import (
    ALL_FIELDS,
    FIELDS_BY_CHANNEL,
    CompiledTemplate,
    choices_error,
    flatten_subject,
    template_errors,
)
from .helpers import ERROR_STYLE, PRE_STYLE, sandboxed_html

MISSING_STYLE = "color: #a05a00; margin: 0.3em 0 0;"

FIELD_LABELS = {
    "email_subject": _("Email subject"),
    "email_body_text": _("Email text"),
    "email_body_html": _("Email HTML"),
    "sms_body": _("SMS"),
    "voice_body": _("Voice call (what is said)"),
}


def render_preview(
    row: MessageTemplate, variant: MessageTemplateVariant | None = None
) -> list[tuple[str, str, str | None, str | None]]:
    """Each non-empty field of ``row`` (or of its translated ``variant``) rendered with the
    template's ``sample_context``, in the variant's language.

    Returns ``(field, label, rendered, error)`` tuples; exactly one of rendered / error is set.
    ``rendered`` is the engine's output, marked safe for every field: escape it to display it.
    Compiles the fields as they stand (saved or not) without the template cache, and renders
    through ``CompiledTemplate.render`` (which compiles with ``compile_field``), exactly as
    send() does.
    """
    context = row.sample_context if row.sample_context is not None else {}
    fields = [f for channel in Channel.values for f in FIELDS_BY_CHANNEL[channel]]
    results: list[tuple[str, str, str | None, str | None]] = []
    compiled = CompiledTemplate(row, variant)  # compiles each field on first use, uncached
    with translation.override(variant.language if variant else None):
        for field in fields:
            if not getattr(compiled.source, field):
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
            if field == "voice_body" and isinstance(row.voice_choices, dict) and row.voice_choices:
                keys = "\n".join(f"  {d}: {name}" for d, name in sorted(row.voice_choices.items()))
                rendered = f"{rendered}\n\n[Keypad] one key is listened for:\n{keys}"
            results.append((field, label, rendered, None))
    return results


def missing_in_sample(
    row: MessageTemplate, variant: MessageTemplateVariant | None = None
) -> dict[str, list[str]]:
    """Field → the variables it outputs that the row's ``sample_context`` lacks (strict or not;
    ``{% if %}`` and ``{% for %}`` tests are not counted), for the default or ``variant``."""
    context = row.sample_context
    if not isinstance(context, dict):
        return {}
    compiled = CompiledTemplate(row, variant)
    found = {}
    for fields in FIELDS_BY_CHANNEL.values():
        for field in fields:
            try:
                names = compiled.missing(field, dict(context))
            except Exception:  # does not compile: render_preview() says so
                continue
            if names:
                found[field] = names
    return found


def preview_html(
    results: list[tuple[str, str, str | None, str | None]], missing: dict[str, list[str]]
):
    rows = []
    for field, label, rendered, error in results:
        if error is not None:
            body = format_html('<p class="errornote" style="{}">{}</p>', ERROR_STYLE, escape(error))
        elif field == "email_body_html":
            body = sandboxed_html(rendered)
        else:
            # escape(), not format_html's conditional escaping: rendered text is a SafeString.
            body = format_html('<pre style="{}">{}</pre>', PRE_STYLE, escape(rendered))
        if missing.get(field):
            body = format_html(
                '{}<p class="comm-preview-missing" style="{}">{} {}</p>',
                body,
                MISSING_STYLE,
                _("Not in the sample context:"),
                ", ".join(missing[field]),
            )
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


class MessageTemplateForm(forms.ModelForm):
    """Every field must compile: the errors name the field."""

    class Meta:
        model = MessageTemplate
        fields = (
            "key",
            "name",
            "message_type",
            "is_active",
            "strict",
            *ALL_FIELDS,
            "voice_choices",
            "sample_context",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        row = MessageTemplate(
            **{name: cleaned.get(name, getattr(self.instance, name)) for name in ALL_FIELDS}
        )
        add_compile_errors(self, row, cleaned.get("key", self.instance.key))
        choices = cleaned.get("voice_choices")
        if "voice_choices" in self.fields and choices is not None:
            error = choices_error(choices)
            if error:
                self.add_error("voice_choices", error)
        return cleaned


def add_compile_errors(form: forms.ModelForm, source: TemplateContent, name: str) -> None:
    for field, error in template_errors(source, name).items():
        if field in form.fields:
            form.add_error(field, error)


class VariantForm(forms.ModelForm):
    """A translated variant: a language of settings.LANGUAGES, fields that compile."""

    language = forms.ChoiceField(choices=())

    class Meta:
        model = MessageTemplateVariant
        fields = ("language", *ALL_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "---------"), *settings.LANGUAGES]
        current = self.instance.language
        if current and current not in dict(settings.LANGUAGES):  # keep an unlisted one editable
            choices.append((current, current))
        self.fields["language"].choices = choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        source = MessageTemplateVariant(
            **{name: cleaned.get(name, getattr(self.instance, name)) for name in ALL_FIELDS}
        )
        add_compile_errors(self, source, f"variant {cleaned.get('language', '')}")
        return cleaned


class VariantInline(admin.StackedInline):
    model = MessageTemplateVariant
    form = VariantForm
    extra = 0
    fields = ("language", *ALL_FIELDS, "preview")
    readonly_fields = ("preview",)
    verbose_name = _("translated variant")
    verbose_name_plural = _("translated variants (blank fields: see the check communication.W003)")

    @admin.display(description=_("rendered preview"))
    def preview(self, obj: MessageTemplateVariant | None):
        if obj is None or obj._state.adding:
            return _("Save the template to see a preview.")
        results = render_preview(obj.template, obj)
        if not results:
            return _("Every field is empty.")
        return preview_html(results, missing_in_sample(obj.template, obj))


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    inlines = [VariantInline]
    list_display = ("key", "name", "message_type", "languages", "is_active", "updated_at")
    list_filter = ("message_type", "is_active", "updated_at")
    search_fields = ("key", "name", "email_subject", "sms_body", "voice_body")
    readonly_fields = ("preview", "created_at", "updated_at")
    prepopulated_fields = {"key": ("name",)}
    fieldsets = (
        (None, {"fields": ("key", "name", "message_type", "is_active", "strict")}),
        (_("Email"), {"fields": ("email_subject", "email_body_text", "email_body_html")}),
        (_("SMS"), {"fields": ("sms_body",)}),
        (_("Voice call"), {"fields": ("voice_body", "voice_choices")}),
        (
            _("Preview"),
            {
                "fields": ("sample_context", "preview"),
                "description": _(
                    "The fields rendered with the sample context (a JSON object), as send() "
                    "renders them, with the variables the sample context lacks. Save and "
                    "continue editing to refresh it. Each translated variant below has its own "
                    "preview, rendered in its language."
                ),
            },
        ),
        (_("History"), {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[MessageTemplate]:
        return super().get_queryset(request).prefetch_related("variants")

    @admin.display(description=_("languages"))
    def languages(self, obj: MessageTemplate) -> str:
        """The default variant, then the languages of the translated ones."""
        codes = [variant.language for variant in obj.variants.all()]
        return ", ".join([str(_("default")), *codes])

    @admin.display(description=_("rendered preview"))
    def preview(self, obj: MessageTemplate | None):
        if obj is None or obj._state.adding:
            return _("Save the template to see a preview.")
        results = render_preview(obj)
        if not results:
            return _("Every field is empty.")
        return preview_html(results, missing_in_sample(obj))
