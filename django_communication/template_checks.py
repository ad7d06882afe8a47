"""Database checks of the templates (``manage.py check --database default``).

communication.W003  a translated variant lacks a channel field its template's default variant has
communication.W004  a translated variant's language is not in settings.LANGUAGES
"""

from __future__ import annotations

from django.core.checks import Warning
from django.db import DatabaseError

from .languages import listed_codes
from .models import MessageTemplateVariant
from .rendering import ALL_FIELDS


def check_template_variants(app_configs=None, databases=None, **kwargs) -> list:
    if not databases:
        return []
    warnings = []
    for database in databases:
        try:
            variants = list(
                MessageTemplateVariant.objects.using(database)
                .select_related("template")
                .order_by("template__key", "language")
            )
        except DatabaseError:  # not migrated yet
            continue
        for variant in variants:
            warnings += variant_warnings(variant)
    return warnings


def variant_warnings(variant: MessageTemplateVariant) -> list:
    where = f"Template {variant.template.key!r} variant {variant.language!r}"
    warnings = []
    missing = [
        name
        for name in ALL_FIELDS
        if getattr(variant.template, name).strip() and not getattr(variant, name).strip()
    ]
    if missing:
        warnings.append(
            Warning(
                f"{where} lacks {', '.join(missing)}, which the default variant has.",
                hint="Fill them in the admin: a message in that language would go without "
                "them, or (when the channel has no text at all) in the default variant.",
                obj=variant,
                id="communication.W003",
            )
        )
    if variant.language not in listed_codes():
        warnings.append(
            Warning(
                f"{where}: {variant.language!r} is not in settings.LANGUAGES, so no message "
                "is rendered from it.",
                hint="Add the language to settings.LANGUAGES or delete the variant.",
                obj=variant,
                id="communication.W004",
            )
        )
    return warnings
