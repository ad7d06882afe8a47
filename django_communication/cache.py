"""Per-process caches, each bounded, so that a warm send() reads nothing from the database and a
process that runs for weeks does not grow.

- ``TimedCache``: values kept for ``COMMUNICATION["CACHE_SECONDS"]``, at most ``maxsize`` of
  them (the least recently used go first; expired ones are dropped when seen). Used for the
  settings singleton, compiled templates and the "is anything blocked" flag.
- ``ProviderCache``: one provider instance per (channel, provider name), rebuilt only when the
  settings row it was built from changes, the replaced one closed.

Saves in this process clear them at once (signals in apps.py); other processes see a change within
``CACHE_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .conf import comm_settings

if TYPE_CHECKING:
    from .models import CommunicationSettings

T = TypeVar("T")


class Closable(Protocol):
    """What the provider cache needs of a provider (providers/base.py sits above this module)."""

    def close(self) -> None: ...


P = TypeVar("P", bound=Closable)


class TimedCache:
    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                return entry[1]
        value = load()
        with self._lock:
            self._entries[key] = (now + comm_settings.cache_seconds, value)
            self._entries.move_to_end(key)
            self._evict(now)
        return value

    def _evict(self, now: float) -> None:
        for key in [key for key, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def settings_version(config: Any) -> tuple:
    """What a settings row holds: equal for two loads of an unchanged row."""
    return tuple(getattr(config, field.attname) for field in config._meta.concrete_fields)


class ProviderCache:
    """Live provider instances, one per (channel, name): bounded by the providers configured.

    A provider is reused across settings reloads while the settings row it was built from holds
    the same values; when they change, a new one is built and the old one is closed (its
    connections released; a call already in flight on it still completes)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[tuple, Any]] = {}
        self._lock = threading.Lock()

    def get(self, channel: str, name: str, config: Any, build: Callable[[], P]) -> P:
        key = (channel, name)
        version = settings_version(config)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                return entry[1]
            provider = build()
            self._entries[key] = (version, provider)
        if entry is not None:
            entry[1].close()
        return provider

    def clear(self) -> None:
        with self._lock:
            replaced = [provider for _, provider in self._entries.values()]
            self._entries.clear()
        for provider in replaced:
            provider.close()

    def __len__(self) -> int:
        return len(self._entries)


settings_cache = TimedCache(maxsize=1)
#: Compiled templates by key: at most this many templates are kept compiled per process.
template_cache = TimedCache(maxsize=1000)
provider_cache = ProviderCache()
#: Whether any suppression or opt-out exists at all: send_many() skips its lookup when none does.
suppression_cache = TimedCache(maxsize=1)


def clear_all() -> None:
    settings_cache.clear()
    template_cache.clear()
    provider_cache.clear()
    suppression_cache.clear()


def settings_row() -> CommunicationSettings:
    """The settings singleton (the row edited in the admin), cached."""
    from .models import CommunicationSettings

    return settings_cache.get("settings", CommunicationSettings.get_solo)
