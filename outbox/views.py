"""An optional health-check endpoint: ``GET`` → whether the outbox is keeping up, as JSON.

Anyone gets ``{"healthy": ...}``; staff (a logged-in ``is_staff`` user) and callers sending
``Authorization: Bearer <OUTBOX["HEALTH_TOKEN"]>`` get the figures of
:func:`outbox.health.outbox_health` too (counts, lag, throughput: never an event's contents).
The status is 200 while the lag is within ``OUTBOX["LAG_THRESHOLD_SECONDS"]``, and
``OUTBOX["HEALTH_LAGGING_STATUS"]`` (503, or 200) above it.

Computing the figures reads the whole outbox table once, so an answer is reused for
:data:`CACHE_SECONDS` by the process that computed it: however often the endpoint is called, it
costs each process at most one pass per interval. A change between healthy and lagging is logged
once per process (WARNING, then INFO when it recovers), not once per request.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .conf import outbox_settings
from .health import OutboxHealth, format_seconds, outbox_health

logger = logging.getLogger("outbox")

#: How long one process reuses the figures it computed.
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_cached: tuple[float, OutboxHealth] | None = None
#: What this process last saw: healthy until it sees otherwise.
_last_healthy = True


def cached_health() -> OutboxHealth:
    """The figures, computed at most once per CACHE_SECONDS per process (and threshold)."""
    global _cached
    threshold = outbox_settings.lag_threshold_seconds
    # Held while computing: concurrent requests wait for one query instead of running their own.
    with _lock:
        now = time.monotonic()
        if _cached is None or now >= _cached[0] or _cached[1].lag_threshold_seconds != threshold:
            _cached = (now + CACHE_SECONDS, outbox_health(threshold))
            log_change(_cached[1])
        return _cached[1]


def log_change(figures: OutboxHealth) -> None:
    """Log when the outbox turns lagging or healthy again, as this process sees it."""
    global _last_healthy
    if figures.healthy == _last_healthy:
        return
    _last_healthy = figures.healthy
    lag = format_seconds(figures.lag_seconds)
    threshold = format_seconds(figures.lag_threshold_seconds)
    if figures.healthy:
        logger.info("outbox healthy again: lag %s (threshold %s)", lag, threshold)
    else:
        logger.warning(
            "outbox lagging: the oldest due event has waited %s (threshold %s); is a relay "
            "running?",
            lag,
            threshold,
        )


def clear_cache() -> None:
    global _cached, _last_healthy
    with _lock:
        _cached = None
        _last_healthy = True


def may_see_figures(request: HttpRequest) -> bool:
    """Staff, or a caller with the configured bearer token."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    token = outbox_settings.health_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    figures = cached_health()
    body = figures.as_dict() if may_see_figures(request) else {"healthy": figures.healthy}
    status = 200 if figures.healthy else outbox_settings.health_lagging_status
    response = JsonResponse(body, status=status)
    # Django logs every 5xx at ERROR: one per probe while lagging. log_change() said it once.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
