from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import models

from .exceptions import InvalidArgumentError
from .models import Message


def get_messages_for_object(obj: models.Model) -> models.QuerySet[Message]:
    """Every message sent about ``obj`` (its ``related_object``), newest first."""
    if not isinstance(obj, models.Model) or obj.pk is None:
        raise InvalidArgumentError("get_messages_for_object() needs a saved model instance.")
    return Message.objects.filter(
        related_content_type=ContentType.objects.get_for_model(obj),
        related_object_id=str(obj.pk),
    ).order_by("-created_at")
