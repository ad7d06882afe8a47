"""Signals applications connect to, to react to what happened to their messages.

Every signal is sent with ``sender=Message`` (the class), after the change is saved (committed,
for webhook-driven changes), and with ``send_robust``: a receiver that raises is logged on the
``django_communication`` logger and never turns a sent message or an acknowledged notification
into an error.

``message_sent(message)``
    The provider accepted ``message`` (status ``sent``, ``provider_message_id`` set).
``message_suppressed(message, reason)``
    ``send()`` wrote ``message`` as ``suppressed`` and called no provider: the address is on the
    suppression list or opted out of the message type. ``reason`` is a human-readable text.
``message_status_changed(message, old_status, new_status, event)``
    A provider event (SNS notification) moved ``message`` from ``old_status`` to
    ``new_status`` (``delivered``, ``bounced``, ``complained`` or ``failed``). ``event`` is the
    saved ``MessageEvent`` history row. Not sent for events that change nothing (duplicates, a
    late Delivery after a Bounce, DeliveryDelay...).
``address_suppressed(suppression)``
    An address was added to the suppression list (``Suppression``: channel, address, reason,
    source_message) by a permanent bounce or a complaint.
``message_received(message)``
    An inbound email or SMS was recorded as ``message`` (direction ``inbound``, status
    ``received``); ``message.recipient`` is the sender's object when the resolver found one.
``reply_received(message, reply, digit, label)``
    The callee of the voice call ``message`` pressed ``digit``, one of its keypad choices, whose
    label is ``label`` (``"confirm"``). ``reply`` is the recorded inbound voice Message
    (``reply.in_reply_to`` is ``message``; it has the call's recipient and related object).
    Sent once per call, after ``message_received`` for the reply.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_communication")

message_sent = Signal()
message_suppressed = Signal()
message_status_changed = Signal()
address_suppressed = Signal()
message_received = Signal()
reply_received = Signal()


def fire(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` from Message; log, never raise, what a receiver raises."""
    if not signal.receivers:
        return
    from .models import Message

    for receiver, result in signal.send_robust(sender=Message, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "django_communication: receiver %r of a signal raised %r",
                receiver,
                result,
                exc_info=(type(result), result, result.__traceback__),
            )
