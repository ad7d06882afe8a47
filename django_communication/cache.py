"""A small per-process cache with a time limit, used for the settings singleton, templates and
provider instances, so that a warm send() reads neither from the database.

Saves in this process clear it at once (signals in apps.py); other processes see a change within
``COMMUNICATION["CACHE_SECONDS"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from .conf import comm_settings

T = TypeVar("T")


class TimedCache:
    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        self._entries[key] = (now + comm_settings.cache_seconds, value)
        return value

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


settings_cache = TimedCache()
template_cache = TimedCache()
provider_cache = TimedCache()
#: Whether any suppression or opt-out exists at all: send_many() skips its lookup when none does.
block_cache = TimedCache()


def clear_all() -> None:
    settings_cache.clear()
    template_cache.clear()
    provider_cache.clear()
    block_cache.clear()


def get_settings():
    """The CommunicationSettings singleton, cached."""
    from .models import CommunicationSettings

    return settings_cache.get("settings", CommunicationSettings.get_solo)
