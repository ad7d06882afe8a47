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

ADDRESS_ATTRIBUTE = {Channel.EMAIL: "email", Channel.SMS: "phone", Channel.VOICE: "phone"}


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
    return clean_phone(address, channel)


def clean_phone(number: str, channel: str = Channel.SMS) -> str:
    """``number`` in E.164; InvalidRecipientError saying, in plain words, what is wrong."""
    region = comm_settings.default_phone_region
    try:
        return e164(number, region)
    except ValueError as exc:
        raise InvalidRecipientError(f"Invalid {channel} phone number {number!r}: {exc}.") from None


def e164(number: str, region: str | None = None) -> str:
    """``number`` in E.164, national numbers read as ``region``'s; ValueError says why not."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        reason = PARSE_PROBLEMS.get(exc.error_type, "it is not a phone number")
        if exc.error_type == exc.INVALID_COUNTRY_CODE and number.lstrip().startswith("+"):
            reason = "no country code follows its +"
        if exc.error_type == exc.INVALID_COUNTRY_CODE and not region:
            reason += " (or set COMMUNICATION['DEFAULT_PHONE_REGION'] for national numbers)"
        raise ValueError(reason) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(validity_problem(parsed))
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def comparable_address(channel: str, address: str) -> str:
    """The form addresses are stored and compared in by suppressions and opt-outs: emails
    lower-cased, phones as given (send() already cleaned them to E.164)."""
    address = address.strip()
    return address.lower() if channel == Channel.EMAIL else address


PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "it has no country code; write it in international format, +<country code> <number>"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "it is too short",
    phonenumbers.NumberParseException.TOO_LONG: "it is too long",
}


def validity_problem(parsed: phonenumbers.PhoneNumber) -> str:
    country = f"+{parsed.country_code}"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    result = phonenumbers.ValidationResult
    if reason == result.INVALID_COUNTRY_CODE:
        return f"{country} is not a country code"
    if reason == result.TOO_SHORT:
        return f"it has too few digits for a {country} number"
    if reason in (result.TOO_LONG, result.INVALID_LENGTH):
        return f"it has the wrong number of digits for a {country} number"
    if reason == result.IS_POSSIBLE_LOCAL_ONLY:
        return "it lacks an area code"
    return f"no {country} number is in use with these digits"
