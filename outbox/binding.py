"""Declare that a Django signal means an outbox event.

    booking_confirmed = Signal()   # your domain signal

    # in your AppConfig.ready():
    bind_signal(
        booking_confirmed,
        "booking.confirmed",
        to=lambda booking, **kwargs: booking.customer,
        context=lambda booking, **kwargs: {"ref": booking.ref},
        related_object=lambda booking, **kwargs: booking,
        idempotency_key=lambda booking, **kwargs: f"booking:{booking.pk}:confirmed",
    )

    # in your transaction:
    booking_confirmed.send(sender=Booking, booking=booking)  # writes the event row

Each mapping is a callable given the signal's keyword arguments (``sender`` included); the row
is written by emit() on the signal sender's connection, so it is inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

from .models import OutboxEvent
from .producer import emit

Mapping = Callable[..., Any] | None


def bind_signal(
    signal: Signal,
    event_type: str,
    *,
    to: Mapping = None,
    context: Mapping = None,
    related_object: Mapping = None,
    channel: Mapping = None,
    idempotency_key: Mapping = None,
    available_at: Mapping = None,
    ordering_key: Mapping = None,
    sender: Any = None,
) -> Callable[..., OutboxEvent]:
    """Connect ``signal`` so that each send emits ``event_type``; returns the receiver."""
    mappings = {
        "to": to,
        "context": context,
        "related_object": related_object,
        "channel": channel,
        "idempotency_key": idempotency_key,
        "available_at": available_at,
        "ordering_key": ordering_key,
    }

    def receiver(sender: Any, **kwargs: Any) -> OutboxEvent:
        arguments = {
            name: mapping(sender=sender, **kwargs)
            for name, mapping in mappings.items()
            if mapping is not None
        }
        return emit(event_type, **arguments)

    signal.connect(
        receiver, sender=sender, weak=False, dispatch_uid=f"outbox:{event_type}:{id(signal)}"
    )
    return receiver
