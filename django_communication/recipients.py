"""Addresses: the recipient's on a channel (from ``to.email`` / ``to.phone``, a plain string, or
``COMMUNICATION["RECIPIENT_RESOLVER"]``), validated and cleaned (phones to E.164) by
``clean_address``; ``comparable_address`` is the form suppressions and opt-outs store."""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .choices import Channel
from .conf import comm_settings
from .exceptions import InvalidRecipientError

ADDRESS_ATTRIBUTE = {Channel.EMAIL: "email", Channel.SMS: "phone"}


def resolve_address(to: Any, channel: str) -> str:
    if to is None:
        raise InvalidRecipientError(
            f"No recipient for the {channel}: pass to=<object with email/phone> or an address."
        )
    resolver = comm_settings.recipient_resolver
    if isinstance(to, str):
        raw = to
    elif resolver is not None:
        raw = resolver(to, channel)
    else:
        raw = getattr(to, ADDRESS_ATTRIBUTE[channel], None)
    if not raw or not str(raw).strip():
        raise InvalidRecipientError(f"Recipient {to!r} has no {channel} address.")
    return clean_address(str(raw).strip(), channel)


def clean_address(address: str, channel: str) -> str:
    """A valid address for ``channel`` (phones in E.164), or InvalidRecipientError."""
    if channel == Channel.EMAIL:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidRecipientError(f"Invalid email address {address!r}.") from None
        return address
    return clean_phone(address)


def clean_phone(number: str) -> str:
    region = comm_settings.default_phone_region
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        hint = (
            ""
            if region
            else " (international format +<country code>..., or set DEFAULT_PHONE_REGION)"
        )
        raise InvalidRecipientError(f"Invalid sms phone number {number!r}: {exc}{hint}.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidRecipientError(f"Invalid sms phone number {number!r}: not a valid number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def comparable_address(channel: str, address: str) -> str:
    """The form addresses are stored and compared in by suppressions and opt-outs: emails
    lower-cased, phones as given (send() already cleaned them to E.164)."""
    address = address.strip()
    return address.lower() if channel == Channel.EMAIL else address
