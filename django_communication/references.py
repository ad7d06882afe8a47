"""Generic references: a content type and an object id in two columns, without a foreign key,
as ``Message`` (recipient, related object) and ``OutboxEvent`` (to, related object) point at any
model; and the query for the messages about an object."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from .exceptions import InvalidArgumentError
from .models import Message


def is_saved(obj: Any) -> bool:
    """A model instance with a row: a default primary key (a UUID) is set before the first save,
    so ``pk`` alone does not tell."""
    return isinstance(obj, models.Model) and obj.pk is not None and not obj._state.adding


def link(row: models.Model, prefix: str, obj: models.Model | None) -> None:
    """Point ``row``'s ``<prefix>_content_type`` / ``<prefix>_object_id`` at the saved ``obj``
    (nothing for None)."""
    if obj is None:
        return
    setattr(row, f"{prefix}_content_type", ContentType.objects.get_for_model(obj))
    setattr(row, f"{prefix}_object_id", str(obj.pk))


def get_messages_for_object(obj: models.Model) -> models.QuerySet[Message]:
    """Every message sent about ``obj`` (its ``related_object``), newest first."""
    if not is_saved(obj):
        raise InvalidArgumentError("get_messages_for_object() needs a saved model instance.")
    return Message.objects.filter(
        related_content_type=ContentType.objects.get_for_model(obj),
        related_object_id=str(obj.pk),
    ).order_by("-created_at")
