"""Twilio webhook requests: parse and verify, nothing else.

A request is trusted only if its ``X-Twilio-Signature`` verifies — with the twilio package's
``RequestValidator`` and the account's auth token — against the URL Twilio called, and it names
our account (``AccountSid``). Twilio signs the public URL it was given, which the server behind a
proxy does not see as such: the URL checked is ``COMMUNICATION["SITE_URL"]`` + the request's
path and query, and else what Django rebuilds from the request (``build_absolute_uri()``, which
follows ``SECURE_PROXY_SSL_HEADER`` and ``USE_X_FORWARDED_HOST``).

Twilio's signature carries no timestamp: a replayed request is recognised by what it says (a
status or a reply already recorded) and refused by the views.
"""

from __future__ import annotations

from contextlib import suppress

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, QueryDict

from ..cache import settings_row
from ..conf import comm_settings
from ..exceptions import ConfigurationError
from ..providers.twilio import credentials, sdk
from .errors import RejectedNotification

FORM = "application/x-www-form-urlencoded"


def signed_urls(request: HttpRequest) -> list[str]:
    """The URLs Twilio may have signed for this request, SITE_URL's first."""
    urls = []
    site_url = comm_settings.site_url
    if site_url:
        urls.append(site_url + request.get_full_path())
    with suppress(DisallowedHost):
        urls.append(request.build_absolute_uri())
    return list(dict.fromkeys(urls))


def verified_params(request: HttpRequest, body: bytes) -> QueryDict:
    """The form fields of a genuine Twilio request; RejectedNotification if it is not one."""
    if request.content_type != FORM:
        raise RejectedNotification(f"Content-Type {request.content_type!r} is not a form.", 400)
    try:
        params = QueryDict(body, encoding="utf-8")
    except UnicodeDecodeError as exc:  # pragma: no cover - QueryDict replaces bad bytes
        raise RejectedNotification("The form is not UTF-8.", 400) from exc
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise RejectedNotification("No X-Twilio-Signature.")
    account_sid, token = credentials(settings_row())
    if not account_sid or not token:
        raise RejectedNotification("No Twilio credentials are configured to verify it.")
    try:
        validator = sdk().RequestValidator(token)
    except ConfigurationError as exc:
        raise RejectedNotification(str(exc), 503) from exc
    if not any(validator.validate(url, params, signature) for url in signed_urls(request)):
        raise RejectedNotification("The Twilio signature does not verify.")
    if params.get("AccountSid") != account_sid:
        raise RejectedNotification(f"AccountSid {params.get('AccountSid')!r} is not ours.")
    return params
