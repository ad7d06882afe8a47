"""The sandbox's booking flow: each change and its outbox event commit together, or not at all.

Nothing is sent here. emit() writes an OutboxEvent row in the same transaction as the booking;
the relay (``manage.py drain_outbox``, or a django-q2 cluster) sends the messages that
``OUTBOX["RULES"]`` names after the commit, and never for a transaction that rolled back.

Safe to call again: the booking is looked up by its reference and each event has an idempotency
key made of it, so a repeated call writes no second event and sends no second message.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from outbox import emit

from .models import Booking, Customer


def event_key(ref: str, what: str) -> str:
    """The idempotency key of a booking's event, e.g. ``booking:BK-2001:confirmed``."""
    return f"booking:{ref}:{what}"


def event_context(booking: Booking) -> dict:
    """What the templates render: JSON only, as the event is stored and rendered later."""
    return {"customer": {"name": booking.customer.name}, "booking": {"ref": booking.ref}}


def confirm_booking(customer: Customer, ref: str) -> Booking:
    """Create (or find) booking ``ref`` and emit ``booking.confirmed`` in the same transaction.

    Called inside an outer transaction, both writes belong to it: if the caller rolls back, the
    booking and its event disappear together and no confirmation is ever sent.
    """
    with transaction.atomic():
        booking, _ = Booking.objects.get_or_create(ref=ref, defaults={"customer": customer})
        emit(
            "booking.confirmed",
            to=booking.customer,
            context=event_context(booking),
            related_object=booking,
            idempotency_key=event_key(ref, "confirmed"),
        )
    return booking


def cancel_booking(booking: Booking) -> Booking:
    """Mark ``booking`` cancelled and emit ``booking.cancelled`` (email and SMS, per the rules)."""
    with transaction.atomic():
        # Locked (where the database can) so two cancellations do not both stamp the time.
        booking = Booking.objects.select_for_update().select_related("customer").get(pk=booking.pk)
        if booking.cancelled_at is None:
            booking.cancelled_at = timezone.now()
            booking.save(update_fields=["cancelled_at"])
        emit(
            "booking.cancelled",
            to=booking.customer,
            context=event_context(booking),
            related_object=booking,
            idempotency_key=event_key(booking.ref, "cancelled"),
        )
    return booking


def on_keypad_reply(sender, message, reply, digit, label, **kwargs) -> None:
    """``reply_received``: the customer pressed a key on the reminder call about a booking.
    "confirm" confirms it, "cancel" cancels it (connected in apps.py)."""
    booking = message.related_object
    if not isinstance(booking, Booking):
        return
    if label == "confirm" and booking.confirmed_at is None:
        Booking.objects.filter(pk=booking.pk).update(confirmed_at=timezone.now())
    elif label == "cancel":
        cancel_booking(booking)
