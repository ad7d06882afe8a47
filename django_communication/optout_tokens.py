"""Unsubscribe tokens: opaque, authenticated, expiring.

A token is ``[channel, address, message type, issue day]`` sealed with AES-SIV (authenticated
encryption, RFC 5297) under a key derived from ``SECRET_KEY``: the address cannot be read from
the URL nor from access logs, and a token cannot be altered or made without the key. AES-SIV is
deterministic, so one recipient gets the same link all day (a message's headers and body agree
however often they are built). Tokens are valid for ``COMMUNICATION["UNSUBSCRIBE_TOKEN_DAYS"]``
from their issue day; keys under ``SECRET_KEY_FALLBACKS`` are still read, so rotating
``SECRET_KEY`` the Django way keeps links working until the old key leaves the fallbacks.

Tokens of the first releases (``signing.Signer``, readable, never expiring) are read while
``COMMUNICATION["UNSUBSCRIBE_LEGACY_TOKENS"]`` is True; none are made any more.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

from .choices import OPT_OUT_TYPES, Channel
from .conf import comm_settings
from .exceptions import ExpiredUnsubscribeToken, InvalidUnsubscribeToken
from .recipients import comparable_address

VERSION = b"\x01"
KEY_SALT = "django_communication.optout_tokens"
#: Plaintexts are padded to a multiple of this, so a token's length says little of the address.
BLOCK = 16
SECONDS_PER_DAY = 86400
#: The salt of legacy (signed) tokens.
LEGACY_SALT = "django_communication.unsubscribe"


def make_token(channel: str, address: str, message_type: str) -> str:
    """The token naming what to unsubscribe from: URL-safe base64, no padding."""
    value = [channel, comparable_address(channel, address), message_type, today()]
    plain = json.dumps(value, separators=(",", ":")).encode()
    plain += b" " * (-len(plain) % BLOCK)  # JSON ignores trailing spaces
    sealed = AESSIV(key(settings.SECRET_KEY)).encrypt(plain, [VERSION])
    return base64.urlsafe_b64encode(VERSION + sealed).rstrip(b"=").decode()


def read_token(token: str) -> tuple[str, str, str]:
    """(channel, address, message_type) from a token. InvalidUnsubscribeToken if it is not
    genuine or names nothing one can opt out of, ExpiredUnsubscribeToken if it is too old."""
    if ":" in token:
        value = read_legacy(token)
    else:
        value = unseal(token)
        if not isinstance(value, list) or len(value) != 4 or not isinstance(value[3], int):
            raise InvalidUnsubscribeToken("Malformed unsubscribe token.")
        days = comm_settings.unsubscribe_token_days
        if days is not None and today() - value[3] > days:
            raise ExpiredUnsubscribeToken(f"The unsubscribe token is older than {days} days.")
        value = value[:3]
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, str) for v in value):
        raise InvalidUnsubscribeToken("Malformed unsubscribe token.")
    channel, address, message_type = value
    if channel not in Channel.values or message_type not in OPT_OUT_TYPES or not address:
        raise InvalidUnsubscribeToken("The unsubscribe token names nothing one can opt out of.")
    return channel, address, message_type


def unseal(token: str) -> object:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidUnsubscribeToken("The unsubscribe token is not base64.") from exc
    if raw[:1] != VERSION:
        raise InvalidUnsubscribeToken("Unknown unsubscribe token version.")
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            plain = AESSIV(key(secret)).decrypt(raw[1:], [VERSION])
        except InvalidTag:
            continue
        return json.loads(plain)
    raise InvalidUnsubscribeToken("The unsubscribe token was not made under this site's keys.")


def read_legacy(token: str) -> object:
    if not comm_settings.unsubscribe_legacy_tokens:
        raise InvalidUnsubscribeToken("Signed (legacy) unsubscribe tokens are not accepted.")
    try:
        return signing.Signer(salt=LEGACY_SALT).unsign_object(token)
    except signing.BadSignature as exc:
        raise InvalidUnsubscribeToken("The legacy unsubscribe token is forged.") from exc


def today() -> int:
    """Days since the Unix epoch (UTC): a token's issue day."""
    return int(time.time() // SECONDS_PER_DAY)


@functools.lru_cache(maxsize=8)
def key(secret: str | bytes) -> bytes:
    """The 64-byte AES-SIV key (two AES-256 keys) derived from ``secret``."""
    return salted_hmac(KEY_SALT, "aes-siv", secret=secret, algorithm="sha512").digest()
