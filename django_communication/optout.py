"""Opt-outs: unsubscribe links, List-Unsubscribe headers (RFC 8058), opt_out() / opt_in().

Recipients may opt out of the types in ``OPT_OUT_TYPES`` (announcements, reminders) per
channel; transactional and alert messages always go out. Emails of those types carry, when
``COMMUNICATION["SITE_URL"]`` is set, a link to the unsubscribe view with an opaque token
(``optout_tokens.py``; ``unsubscribe_url`` in the template context) and the
``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers, so mail clients show a one-click
"Unsubscribe".
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse

from .cache import suppression_cache
from .choices import OPT_OUT_TYPES, Channel
from .conf import comm_settings
from .exceptions import ConfigurationError, InvalidArgumentError
from .models import OptOut
from .optout_tokens import make_token
from .recipients import comparable_address


def can_opt_out(message_type: str) -> bool:
    return message_type in OPT_OUT_TYPES


def unsubscribe_url(channel: str, address: str, message_type: str) -> str | None:
    """The absolute one-click unsubscribe URL, or None without SITE_URL or for a message type
    that cannot be opted out of."""
    site_url = comm_settings.site_url
    if not site_url or not can_opt_out(message_type) or not address:
        return None
    token = make_token(channel, address, message_type)
    try:
        path = reverse("django_communication:unsubscribe", args=[token])
    except NoReverseMatch as exc:
        raise ConfigurationError(
            "COMMUNICATION['SITE_URL'] is set but django_communication.urls is not in the "
            "URLconf: add path('communication/', include('django_communication.urls'))."
        ) from exc
    return site_url + path


def unsubscribe_headers(url: str | None) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for an outbound email whose unsubscribe URL is ``url``; none
    without one."""
    if url is None:
        return {}
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def opt_out(address: str, channel: str, message_type: str, *, source: str = "api") -> bool:
    """Record that ``address`` wants no more ``message_type`` messages on ``channel``. Returns
    True if this is new. Raises InvalidArgumentError for a type that cannot be opted out of."""
    if channel not in Channel.values:
        raise InvalidArgumentError(f"Unknown channel {channel!r}.")
    if not can_opt_out(message_type):
        allowed = ", ".join(sorted(OPT_OUT_TYPES))
        raise InvalidArgumentError(
            f"{message_type!r} messages cannot be opted out of; only {allowed} can."
        )
    address = comparable_address(channel, address)
    if not address:
        raise InvalidArgumentError("An opt-out needs an address.")
    try:
        with transaction.atomic():
            _, created = OptOut.objects.get_or_create(
                channel=channel,
                address=address,
                message_type=message_type,
                defaults={"source": source[:30]},
            )
    except IntegrityError:  # the same opt-out, concurrently
        created = False
    suppression_cache.clear()
    return created


def opt_in(address: str, channel: str, message_type: str) -> bool:
    """Remove an opt-out; True if there was one."""
    deleted, _ = OptOut.objects.filter(
        channel=channel, address=comparable_address(channel, address), message_type=message_type
    ).delete()
    suppression_cache.clear()
    return bool(deleted)


def masked(channel: str, address: str) -> str:
    """Enough of an address for its owner to recognise it, too little to learn it from:
    ``j•••@e•••.com``, ``+••••••••••56``. The unsubscribe pages show this, since whoever holds
    a link (a forwarded email, an access log) may open them."""
    if channel == Channel.EMAIL and "@" in address:
        local, _, domain = address.rpartition("@")
        name, _, suffix = domain.rpartition(".")
        return f"{local[:1]}•••@{name[:1]}•••.{suffix}" if name else f"{local[:1]}•••@•••"
    if len(address) <= 4:
        return "•" * len(address)
    return address[:1] + "•" * (len(address) - 3) + address[-2:]
