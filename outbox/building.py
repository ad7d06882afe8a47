"""build_event(): the checks emit() makes, and the unsaved event they give."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from typing import Any

from django.db import models

from django_communication.attachments import check_channel, check_size, normalise, store
from django_communication.exceptions import InvalidArgumentError
from django_communication.languages import supported
from django_communication.references import is_saved, link
from django_communication.routing import validate_channel

from .conf import outbox_settings
from .context import ContextEncoder
from .exceptions import InvalidEventError
from .models import OutboxEvent

#: The JSON escape of a NUL character (not an escaped backslash followed by "u0000").
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

_sequence_lock = threading.Lock()
_last_sequence = 0


def build_event(
    event_type: str,
    *,
    to: models.Model | None = None,
    context: dict[str, Any] | None = None,
    related_object: models.Model | None = None,
    channel: str | None = None,
    idempotency_key: str | None = None,
    available_at: datetime | None = None,
    ordering_key: str | None = None,
    language: str | None = None,
    attachments: list[Any] | None = None,
) -> OutboxEvent:
    """A validated, unsaved event (its attachments, if any, stored)."""
    if not isinstance(event_type, str) or not event_type.strip():
        raise InvalidEventError("emit() needs a non-empty event_type string.")
    if not outbox_settings.handles(event_type):
        raise InvalidEventError(
            f"No rule for event type {event_type!r} in OUTBOX['RULES']: the event could only "
            "go dead. Add a rule for it, or fix the event type's spelling."
        )
    if ordering_key is not None and (
        not isinstance(ordering_key, str)
        or not ordering_key
        or len(ordering_key) > 255
        or "\x00" in ordering_key
    ):
        raise InvalidEventError(
            f"emit(ordering_key=...) must be a string of 1 to 255 characters, got {ordering_key!r}."
        )
    if channel:
        try:
            validate_channel(channel)
        except InvalidArgumentError as exc:
            raise InvalidEventError(str(exc)) from None
    check_serialisable(context)
    if language:
        code = supported(language)
        if code is None:
            raise InvalidEventError(
                f"emit(language={language!r}) is not in settings.LANGUAGES: use one of its codes."
            )
        language = code
    event = OutboxEvent(
        event_type=event_type,
        context=context or {},
        channel=channel or "",
        language=language or "",
        idempotency_key=idempotency_key or None,
    )
    if available_at is not None:
        event.available_at = available_at
    if ordering_key is not None:
        event.ordering_key = ordering_key
        event.ordering_seq = next_sequence()
    reference(event, "to", to)
    reference(event, "related", related_object)
    if attachments:
        event.attachments = stored_attachments(attachments, channel)
    return event


def stored_attachments(items: list[Any], channel: str | None) -> list[dict[str, Any]]:
    """Checked (kinds, channel, ATTACHMENT_MAX_BYTES), then stored: references for the row."""
    try:
        files = normalise(items)
        check_channel(files, channel or "email")
        check_size(files)
    except InvalidArgumentError as exc:
        raise InvalidEventError(f"emit(): {exc}") from None
    return [stored.as_dict() for stored in store(files)]


def next_sequence() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process: the emit order of
    events sharing an ordering key, even within one bulk INSERT or across a clock step back."""
    global _last_sequence
    with _sequence_lock:
        _last_sequence = max(time.time_ns(), _last_sequence + 1)
        return _last_sequence


def reference(event: OutboxEvent, prefix: str, obj: models.Model | None) -> None:
    if obj is not None and not is_saved(obj):
        argument = "to" if prefix == "to" else "related_object"
        raise InvalidEventError(
            f"emit({argument}=...) must be a saved model instance, got {obj!r}."
        )
    link(event, prefix, obj)


def check_serialisable(context: Any) -> None:
    if context is None:
        return
    if not isinstance(context, dict):
        raise InvalidEventError(f"emit(context=...) must be a dict, not {type(context).__name__}.")
    try:
        encode(context)
    except (TypeError, ValueError):
        raise InvalidEventError(
            f"emit(context=...) is not JSON-serialisable at {find_unserialisable(context)}."
        ) from None


def encode(value: Any) -> str:
    """JSON that every backend stores: PostgreSQL's jsonb and SQLite's JSON_VALID() refuse NaN
    and Infinity, and jsonb refuses NUL characters; refused here, they cannot abort the caller's
    transaction."""
    text = json.dumps(value, cls=ContextEncoder, allow_nan=False)
    if NUL_ESCAPE.search(text):
        raise ValueError("a NUL character")
    return text


def find_unserialisable(value: Any, path: str = "context", parents: tuple = ()) -> str:
    """The path of the first value encode() refuses, e.g. context['booking']."""
    if any(value is parent for parent in parents):
        return f"{path} (a circular reference)"
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(f"{path}[{key!r}]", item) for key, item in value.items()]
        if any(not isinstance(key, (str, int, float, bool)) for key in value):
            return f"{path} (a key that is not a string)"
    elif isinstance(value, (list, tuple)):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    for item_path, item in items:
        try:
            encode(item)
        except (TypeError, ValueError):
            return find_unserialisable(item, item_path, (*parents, value))
    return f"{path} ({type(value).__name__})"
