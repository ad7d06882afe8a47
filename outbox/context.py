"""The stored form of an event's context: JSON that gives the relay back the values emit() got.

Plain JSON turns a date into a string, and ``{{ when|date:"d M Y" }}`` then renders empty
through the outbox while it works through ``send()``. So the values JSON has no type for are
stored as tagged objects, ``{"$type": "date", "value": "2025-05-01"}``, and decoded when the row
is read. Strings, numbers, booleans, None, lists and dicts are stored as they are (key lookups
such as ``context__booking__ref`` keep working). A dict of the caller's that has a ``"$type"``
key is stored tagged too, so that nothing the caller wrote is ever read back as a tag.

Rows written before this encoding hold plain strings, and read back as those strings.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

TAG = "$type"


def _timedelta(value: datetime.timedelta) -> list[int]:
    return [value.days, value.seconds, value.microseconds]


#: type → (tag, to JSON, from JSON). datetime before date: a datetime is a date.
TYPES: list[tuple[type, str, Callable[[Any], Any], Callable[[Any], Any]]] = [
    (datetime.datetime, "datetime", datetime.datetime.isoformat, datetime.datetime.fromisoformat),
    (datetime.date, "date", datetime.date.isoformat, datetime.date.fromisoformat),
    (datetime.time, "time", datetime.time.isoformat, datetime.time.fromisoformat),
    (datetime.timedelta, "timedelta", _timedelta, lambda parts: datetime.timedelta(*parts)),
    (decimal.Decimal, "decimal", str, decimal.Decimal),
    (uuid.UUID, "uuid", str, uuid.UUID),
]
DECODERS = {tag: decode for _, tag, _, decode in TYPES}


def tag(value: Any, _parents: frozenset[int] = frozenset()) -> Any:
    """``value`` with every typed value (and every dict holding a ``"$type"`` key) tagged."""
    if isinstance(value, (dict, list, tuple)):
        if id(value) in _parents:
            raise ValueError("Circular reference detected")
        parents = _parents | {id(value)}
        if isinstance(value, dict):
            if TAG in value:
                pairs = [[key, tag(item, parents)] for key, item in value.items()]
                return {TAG: "dict", "value": pairs}
            return {key: tag(item, parents) for key, item in value.items()}
        return [tag(item, parents) for item in value]
    for kind, name, encode, _ in TYPES:
        if isinstance(value, kind):
            return {TAG: name, "value": encode(value)}
    return value


def untag(obj: dict[str, Any]) -> Any:
    """json's ``object_hook``: a tagged object back to its value; any other dict as it is."""
    name = obj.get(TAG)
    if name is None or len(obj) != 2 or "value" not in obj:
        return obj
    if name == "dict":
        return dict(obj["value"])
    decode = DECODERS.get(name)
    if decode is None:
        return obj
    try:
        return decode(obj["value"])
    except (TypeError, ValueError, ArithmeticError):
        return obj


class ContextEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder (lazy strings and the rest) over the tagged form of the value.
    (``encode()`` goes through ``iterencode()``.)"""

    def iterencode(self, o: Any, _one_shot: bool = False):
        return super().iterencode(tag(o), _one_shot)


class ContextDecoder(json.JSONDecoder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("object_hook", untag)
        super().__init__(*args, **kwargs)
