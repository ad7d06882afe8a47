"""The suppression list and opt-outs as send_many() sees them: two queries per batch at most,
none at all while neither table has a row.

``find_suppressed(messages)`` says which unsaved or retried messages must not go out and why;
``suppress()`` adds an address to the list (permanent bounces, complaints, staff).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from .cache import suppression_cache
from .choices import OPT_OUT_TYPES
from .exceptions import RecipientOptedOutError, RecipientSuppressedError
from .models import Message, OptOut, Suppression
from .recipients import comparable_address


def anything_suppressed() -> bool:
    """Whether any suppression or opt-out exists, cached per process for CACHE_SECONDS (a save
    in this process clears it at once)."""
    return suppression_cache.get(
        "any", lambda: Suppression.objects.exists() or OptOut.objects.exists()
    )


def find_suppressed(messages: Sequence[Message]) -> list[RecipientSuppressedError | None]:
    """For each message, in order: None if it may go out, else the error that holds it back — a
    RecipientSuppressedError (its address is on the suppression list of its channel) or a
    RecipientOptedOutError (its address opted out of its message type). Two queries for the
    whole batch, none while nothing is suppressed anywhere. Not a UNION: Django 4.2 orders a
    values_list()'s constant columns differently."""
    found: list[RecipientSuppressedError | None] = [None] * len(messages)
    outbound = [m for m in messages if m.to_address]
    if not outbound or not anything_suppressed():
        return found
    addresses = {comparable_address(m.channel, m.to_address) for m in outbound}
    types = {m.message_type for m in outbound if m.message_type in OPT_OUT_TYPES}
    rows = (
        Suppression.objects.filter(address__in=addresses)
        .order_by()
        .values_list("channel", "address", "reason")
    )
    suppressed = {(channel, address): reason for channel, address, reason in rows}
    opted_out: set[tuple[str, str, str]] = set()
    if types:
        opted_out = set(
            OptOut.objects.filter(address__in=addresses, message_type__in=types)
            .order_by()
            .values_list("channel", "address", "message_type")
        )
    labels = dict(Suppression._meta.get_field("reason").choices)
    for position, message in enumerate(messages):
        if not message.to_address:
            continue
        channel, address = message.channel, comparable_address(message.channel, message.to_address)
        if (channel, address) in suppressed:
            reason = suppressed[(channel, address)]
            found[position] = RecipientSuppressedError(
                f"Suppressed: {address} is on the suppression list ({labels.get(reason, reason)}).",
                message=message,
            )
        elif (channel, address, message.message_type) in opted_out:
            found[position] = RecipientOptedOutError(
                f"Opted out: {address} opted out of {message.message_type} messages by {channel}.",
                message=message,
            )
    return found


def suppress(
    channel: str,
    address: str,
    reason: str,
    *,
    source_message: Message | None = None,
    detail: str = "",
) -> Suppression | None:
    """Add ``address`` to the suppression list; return the new row, or None if it was there
    already (the first reason is kept)."""
    address = comparable_address(channel, address)
    if not address:
        return None
    if Suppression.objects.filter(channel=channel, address=address).exists():
        return None
    try:
        with transaction.atomic():
            row = Suppression.objects.create(
                channel=channel,
                address=address,
                reason=reason,
                source_message=source_message,
                detail=detail[:255],
            )
    except IntegrityError:  # a concurrent notification added it first
        return None
    suppression_cache.clear()
    return row
