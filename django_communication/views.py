"""The SNS webhook and the unsubscribe page. Wire them with
``path("communication/", include("django_communication.urls"))``."""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from .conf import comm_settings
from .exceptions import ExpiredUnsubscribeToken, InvalidUnsubscribeToken
from .optout import masked, opt_out
from .optout_tokens import read_token
from .tracking import MalformedEvent
from .webhooks import notifications, sns
from .webhooks.errors import RejectedNotification

logger = logging.getLogger("django_communication")


@csrf_exempt
@never_cache
def sns_webhook(request: HttpRequest) -> HttpResponse:
    """Amazon SNS HTTP(S) endpoint: SES events, inbound email and SMS, SMS delivery status.

    200 when handled (or knowingly ignored); 4xx, with nothing changed, when the request is not
    a verified notification from an accepted topic; 503 when the signing certificate cannot be
    fetched right now (SNS retries). A refusal's body is the status phrase only; why is logged.
    """
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        body = read_body(request)
        message = sns.parse(body, comm_settings.sns_topic_arns)
        outcome = notifications.handle(message)
    except sns.RejectedNotification as exc:
        return refused(exc.status, exc.reason)
    except MalformedEvent as exc:
        return refused(400, f"malformed payload: {exc}")
    return HttpResponse(outcome, content_type="text/plain")


def read_body(request: HttpRequest) -> bytes:
    """The request body, at most WEBHOOK_MAX_BYTES; RejectedNotification (400, 413) if not."""
    limit = comm_settings.webhook_max_bytes
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise RejectedNotification("bad Content-Length", 400) from None
    if declared > limit:
        raise RejectedNotification(f"Content-Length {declared} > WEBHOOK_MAX_BYTES {limit}", 413)
    body = request.read(limit + 1)
    if len(body) > limit:
        raise RejectedNotification(f"body longer than WEBHOOK_MAX_BYTES {limit}", 413)
    return body


def refused(status: int, reason: str, source: str = "SNS") -> HttpResponse:
    """A refusal: the detail goes to the log, the answer is only the status's phrase (the
    detail quotes the request, which an answer must not echo)."""
    logger.warning("django_communication: %s request refused (%s): %s", source, status, reason)
    return HttpResponse(HTTPStatus(status).phrase, status=status, content_type="text/plain")


@csrf_exempt
@never_cache
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page with a button (link scanners prefetch GETs, so GET changes nothing).
    POST: the opt-out, from that button or from a mail client's RFC 8058 one-click request
    (``List-Unsubscribe=One-Click``). The token is the authority; no CSRF token. The pages show
    the address masked: whoever holds the link may open them."""
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    try:
        channel, address, message_type = read_token(token)
    except InvalidUnsubscribeToken as exc:
        expired = isinstance(exc, ExpiredUnsubscribeToken)
        return render(
            request,
            "django_communication/unsubscribe_invalid.html",
            {"expired": expired},
            status=410 if expired else 400,
        )
    context = {
        "channel": channel,
        "address": masked(channel, address),
        "message_type": message_type,
    }
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        opt_out(address, channel, message_type, source="one-click" if one_click else "link")
        return render(request, "django_communication/unsubscribed.html", context)
    return render(request, "django_communication/unsubscribe.html", context)
