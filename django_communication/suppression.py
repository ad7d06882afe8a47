"""The suppression list and opt-outs as send_many() sees them: two queries per batch at most,
none at all while neither table has a row.

``find_blocked(messages)`` says which unsaved or retried messages must not go out and why;
``suppress()`` adds an address to the list (permanent bounces, complaints, staff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from .cache import block_cache
from .conf import OPT_OUT_TYPES
from .models import Channel, Message, OptOut, Suppression

#: Prefix of ``Message.error`` for a message held back by an opt-out (vs. the suppression list).
OPTED_OUT = "Opted out"
SUPPRESSED = "Suppressed"


@dataclass(frozen=True)
class Block:
    reason: str
    opted_out: bool


def normalize(channel: str, address: str) -> str:
    """The form addresses are stored and compared in: emails lower-cased, phones as given
    (send() already normalised them to E.164)."""
    address = address.strip()
    return address.lower() if channel == Channel.EMAIL else address


def any_blocks() -> bool:
    """Whether any suppression or opt-out exists, cached per process for CACHE_SECONDS (a save
    in this process clears it at once)."""
    return block_cache.get("any", lambda: Suppression.objects.exists() or OptOut.objects.exists())


def find_blocked(messages: Sequence[Message]) -> dict[int, Block]:
    """``{id(message): Block}`` for the messages whose address is suppressed on their channel or
    opted out of their message type. Two queries for the whole batch (none if nothing is blocked
    anywhere). Not a UNION: Django 4.2 orders a values_list()'s constant columns differently."""
    outbound = [m for m in messages if m.to_address]
    if not outbound or not any_blocks():
        return {}
    addresses = {normalize(m.channel, m.to_address) for m in outbound}
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
    found: dict[int, Block] = {}
    for message in outbound:
        key = (message.channel, normalize(message.channel, message.to_address))
        if key in suppressed:
            label = dict(Suppression._meta.get_field("reason").choices).get(
                suppressed[key], suppressed[key]
            )
            found[id(message)] = Block(
                f"{SUPPRESSED}: {key[1]} is on the suppression list ({label}).", False
            )
        elif (*key, message.message_type) in opted_out:
            found[id(message)] = Block(
                f"{OPTED_OUT}: {key[1]} opted out of {message.message_type} messages by "
                f"{message.channel}.",
                True,
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
    address = normalize(channel, address)
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
    block_cache.clear()
    return row
