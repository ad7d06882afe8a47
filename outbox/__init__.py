"""Transactional outbox: events written in the producer's transaction, dispatched by a relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import InvalidEventError, OutboxError

if TYPE_CHECKING:
    from .binding import bind_signal
    from .producer import emit

__all__ = ["InvalidEventError", "OutboxError", "bind_signal", "emit"]


def __getattr__(name: str) -> Any:
    # emit() needs the models, which cannot load before the app registry is ready.
    if name == "emit":
        from .producer import emit

        return emit
    if name == "bind_signal":
        from .binding import bind_signal

        return bind_signal
    raise AttributeError(f"module 'outbox' has no attribute {name!r}")
