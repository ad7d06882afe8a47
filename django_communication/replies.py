"""Keypad replies to voice calls: the key the callee pressed, recorded as an inbound voice
``Message`` that answers the call (``in_reply_to``) and shares its recipient and related object,
then ``reply_received`` — so an application confirms or cancels a booking in a few lines:

    @receiver(reply_received)
    def on_reply(sender, message, reply, digit, label, **kwargs):
        if label == "confirm":
            Booking.objects.filter(pk=message.related_object_id).update(confirmed=True)

One reply per call: the reply's idempotency key is ``inbound:<provider>:<call id>:keypad``.
The Twilio keypad webhook calls ``record_reply()``; with the console or memory provider, call
it yourself to play the callee (the sandbox demo does).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .choices import Channel, Direction, EventType, MessageStatus
from .exceptions import InvalidArgumentError
from .inbound import save
from .models import Message
from .signals import fire, reply_received


def record_reply(
    call: Message, digit: str, call_id: str = "", payload: dict[str, Any] | None = None
) -> Message | None:
    """Record ``digit`` (one of ``call.choices``) pressed during ``call`` (the provider's id
    for the call: ``call_id``, by default the one it returned); fire the signals. None if this
    call's reply was recorded before; InvalidArgumentError if ``digit`` is no choice of it."""
    if call.channel != Channel.VOICE or digit not in call.choices:
        raise InvalidArgumentError(f"{digit!r} is not a keypad choice of the call {call.pk}.")
    label = call.choices[digit]
    call_id = call_id or call.provider_message_id or str(call.pk)
    reply = Message(
        channel=Channel.VOICE,
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        message_type=call.message_type,
        from_address=call.to_address,
        to_address=call.from_address,
        body_text=label,
        choices={digit: label},
        provider=call.provider,
        provider_message_id=call_id[:255],
        sent_at=timezone.now(),
        idempotency_key=f"inbound:{call.provider or 'voice'}:{call_id}:keypad"[:255],
        in_reply_to=call,
        recipient_content_type_id=call.recipient_content_type_id,
        recipient_object_id=call.recipient_object_id,
        related_content_type_id=call.related_content_type_id,
        related_object_id=call.related_object_id,
    )
    saved = save(reply, payload or {}, f"keypad:{call_id}"[:100], "", EventType.KEYPAD_REPLY)
    if saved is not None:
        fire(reply_received, message=call, reply=saved, digit=digit, label=label)
    return saved
