"""Templates from the database, compiled once and rendered with Django's engine.

HTML fields are autoescaped; subjects, text and SMS bodies are not. Compiled templates are cached
per template row (see cache.py) and dropped when the row is saved or deleted.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Template

from .cache import template_cache
from .choices import Channel
from .exceptions import TemplateNotFoundError, TemplateRenderError
from .models import MessageTemplate


def engine() -> Engine:
    """The project's Django template engine (so its libraries load), or a plain one.

    Engine.get_default() is cached by Django and reset when TEMPLATES changes.
    """
    try:
        return Engine.get_default()
    except ImproperlyConfigured:
        return Engine()


FIELDS_BY_CHANNEL = {
    Channel.EMAIL: ("email_subject", "email_body_text", "email_body_html"),
    Channel.SMS: ("sms_body",),
}
AUTOESCAPED_FIELDS = frozenset({"email_body_html"})
ALL_FIELDS = FIELDS_BY_CHANNEL[Channel.EMAIL] + FIELDS_BY_CHANNEL[Channel.SMS]


class CompiledTemplate:
    """A template row whose fields are compiled on first use, so a syntax error in one field
    (the SMS body) does not stop sends that never use it (email)."""

    def __init__(self, row: MessageTemplate) -> None:
        self.row = row
        self._compiled: dict[str, Template | None] = {}

    def field(self, name: str) -> Template | None:
        if name not in self._compiled:
            self._compiled[name] = compile_field(self.row, name)
        return self._compiled[name]

    def render(self, name: str, context: dict[str, Any]) -> str:
        template = self.field(name)
        if template is None:
            return ""
        try:
            return template.render(Context(context, autoescape=name in AUTOESCAPED_FIELDS))
        except Exception as exc:
            raise TemplateRenderError(
                f"Template {self.row.key!r} field {name!r} failed to render: {exc}"
            ) from exc


def compile_field(row: MessageTemplate, field: str) -> Template | None:
    source = getattr(row, field)
    if not source:
        return None
    try:
        return engine().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(
            f"Template {row.key!r} field {field!r} does not compile: {exc}"
        ) from exc


def get_template(key: str) -> CompiledTemplate:
    def load() -> CompiledTemplate:
        row = MessageTemplate.objects.filter(key=key, is_active=True).first()
        if row is None:
            raise TemplateNotFoundError(f"No active message template with key {key!r}.")
        return CompiledTemplate(row)

    return template_cache.get(key, load)


def template_errors(row: MessageTemplate) -> dict[str, str]:
    """Field name → why it does not compile, for the fields of ``row`` that do not."""
    errors = {}
    for field in ALL_FIELDS:
        try:
            compile_field(row, field)
        except TemplateRenderError as exc:
            errors[field] = str(exc)
    return errors


def flatten_subject(subject: str) -> str:
    """Line breaks in a header would start a new header: fold them into single spaces."""
    return " ".join(subject.split())
