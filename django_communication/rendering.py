"""Templates from the database, compiled once and rendered with Django's engine.

HTML fields are autoescaped; subjects, text and SMS bodies are not. Compiled templates are cached
per key with their translated variants (see cache.py) and dropped when a template or variant is
saved or deleted. composing.py renders them with the message's language active.

Strict templates (COMMUNICATION["STRICT_TEMPLATES"] or the template's ``strict`` box) are
compiled by a copy of the engine whose ``string_if_invalid`` is MISSING: Django formats it with
the name of each ``{{ variable }}`` it cannot resolve, and MISSING raises there (or, for the
admin preview, writes the name down). ``{% if %}`` and ``{% for %}`` never ask for it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Template

from .cache import template_cache
from .choices import Channel
from .conf import comm_settings
from .exceptions import TemplateNotFoundError, TemplateRenderError
from .languages import fallbacks
from .models import MessageTemplate, MessageTemplateVariant, TemplateContent


def engine() -> Engine:
    """The project's Django template engine (so its libraries load), or a plain one.

    Engine.get_default() is cached by Django and reset when TEMPLATES changes.
    """
    try:
        return Engine.get_default()
    except ImproperlyConfigured:
        return Engine()


class MissingVariable(Exception):
    def __init__(self, variable: str) -> None:
        super().__init__(variable)
        self.variable = variable


#: Where MISSING writes the names down instead of raising (the admin preview), if anywhere.
_missing_names: ContextVar[list[str] | None] = ContextVar("missing_names", default=None)


class Missing(str):
    """A ``string_if_invalid`` that Django formats (``"%s" in it``) with the variable."""

    def __mod__(self, variable: object) -> str:
        names = _missing_names.get()
        if names is None:
            raise MissingVariable(str(variable))
        names.append(str(variable))
        return ""


MISSING = Missing("%s")


@functools.lru_cache(maxsize=4)
def strict_engine(base: Engine) -> Engine:
    """``base`` (its loaders, libraries, builtins) with a ``string_if_invalid`` that raises."""
    strict = copy.copy(base)
    strict.string_if_invalid = MISSING
    return strict


FIELDS_BY_CHANNEL = {
    Channel.EMAIL: ("email_subject", "email_body_text", "email_body_html"),
    Channel.SMS: ("sms_body",),
    Channel.VOICE: ("voice_body",),
}
AUTOESCAPED_FIELDS = frozenset({"email_body_html"})
ALL_FIELDS = tuple(field for fields in FIELDS_BY_CHANNEL.values() for field in fields)


class CompiledTemplate:
    """A template's variant (its default, ``source`` the MessageTemplate row, or a translated
    one) whose fields are compiled on first use, so a syntax error in one field (the SMS body)
    does not stop sends that never use it (email). ``row`` is always the MessageTemplate."""

    def __init__(
        self,
        row: MessageTemplate,
        source: TemplateContent | None = None,
        variants: Iterable[MessageTemplateVariant] = (),
    ) -> None:
        self.row = row
        self.source: TemplateContent = source if source is not None else row
        self.language: str = getattr(self.source, "language", "")
        self.name = f"{row.key} ({self.language})" if self.language else row.key
        self.variants = {v.language: CompiledTemplate(row, v) for v in variants}
        self._compiled: dict[tuple[str, bool], Template | None] = {}

    @property
    def strict(self) -> bool:
        return self.row.strict or comm_settings.strict_templates

    def for_language(self, language: str, channel: str) -> CompiledTemplate:
        """The variant of ``language`` (or of its generic language: pt-br → pt) that has text
        for ``channel``; the default variant when none has."""
        if self.variants:
            for code in fallbacks(language):
                variant = self.variants.get(code)
                if variant is not None and variant.has_channel(channel):
                    return variant
        return self

    def has_channel(self, channel: str) -> bool:
        return any(getattr(self.source, name) for name in FIELDS_BY_CHANNEL[channel])

    def field(self, name: str, strict: bool = False) -> Template | None:
        if (name, strict) not in self._compiled:
            self._compiled[name, strict] = compile_field(self.source, name, self.name, strict)
        return self._compiled[name, strict]

    def render(self, name: str, context: dict[str, Any]) -> str:
        """Field ``name`` rendered; with strict templates, a missing variable raises."""
        template = self.field(name, self.strict)
        if template is None:
            return ""
        try:
            return template.render(Context(context, autoescape=name in AUTOESCAPED_FIELDS))
        except MissingVariable as exc:
            raise TemplateRenderError(
                f"Template {self.name!r} field {name!r} uses the variable "
                f"{exc.variable!r}, which the context does not have (strict templates: pass "
                f"it, or test it with {{% if %}} first).",
                variable=exc.variable,
            ) from None
        except Exception as exc:
            raise TemplateRenderError(
                f"Template {self.name!r} field {name!r} failed to render: {exc}"
            ) from exc

    def missing(self, name: str, context: dict[str, Any]) -> list[str]:
        """The variables field ``name`` outputs that ``context`` lacks, strict or not."""
        template = self.field(name, strict=True)
        if template is None:
            return []
        names: list[str] = []
        token = _missing_names.set(names)
        try:
            template.render(Context(context, autoescape=name in AUTOESCAPED_FIELDS))
        except Exception:  # render() reports it; these are the names found before it
            pass
        finally:
            _missing_names.reset(token)
        return list(dict.fromkeys(names))


def compile_field(
    source: TemplateContent, field: str, name: str, strict: bool = False
) -> Template | None:
    text = getattr(source, field)
    if not text:
        return None
    try:
        return (strict_engine(engine()) if strict else engine()).from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(
            f"Template {name!r} field {field!r} does not compile: {exc}"
        ) from exc


def get_template(key: str) -> CompiledTemplate:
    """The active template ``key`` with its translated variants, compiled and cached."""

    def load() -> CompiledTemplate:
        row = MessageTemplate.objects.filter(key=key, is_active=True).first()
        if row is None:
            raise TemplateNotFoundError(f"No active message template with key {key!r}.")
        return CompiledTemplate(row, variants=row.variants.all())

    return template_cache.get(key, load)


def template_errors(source: TemplateContent, name: str) -> dict[str, str]:
    """Field name → why it does not compile, for the fields of ``source`` that do not."""
    errors = {}
    for field in ALL_FIELDS:
        try:
            compile_field(source, field, name)
        except TemplateRenderError as exc:
            errors[field] = str(exc)
    return errors


#: The keys a caller can press; a choice is one of them.
KEYPAD = frozenset("0123456789*#")
MAX_LABEL = 50


def choices_error(value: Any) -> str | None:
    """Why ``value`` is not a set of keypad choices (``{"1": "confirm", "2": "cancel"}``), or
    None if it is one."""
    if not isinstance(value, dict):
        return f"Keypad choices must be a JSON object of digit -> label, not {value!r}."
    for digit, label in value.items():
        if digit not in KEYPAD:
            return f"Keypad choice {digit!r} is not one key (0-9, * or #)."
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
            return (
                f"The label of keypad choice {digit!r} must be a text of 1 to {MAX_LABEL} "
                "characters."
            )
    return None


def flatten_subject(subject: str) -> str:
    """Line breaks in a header would start a new header: fold them into single spaces."""
    return " ".join(subject.split())
