"""Transactional outbox: events written in the producer's transaction, dispatched by a relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import InvalidEventError, OutboxError

if TYPE_CHECKING:
    from .binding import bind_signal
    from .producer import cancel, emit, emit_many

__all__ = ["InvalidEventError", "OutboxError", "bind_signal", "cancel", "emit", "emit_many"]


def __getattr__(name: str) -> Any:
    # emit() needs the models, which cannot load before the app registry is ready.
    if name in ("emit", "emit_many", "cancel"):
        from . import producer

        return getattr(producer, name)
    if name == "bind_signal":
        from .binding import bind_signal

        return bind_signal
    raise AttributeError(f"module 'outbox' has no attribute {name!r}")
