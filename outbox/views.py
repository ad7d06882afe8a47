"""An optional health-check endpoint: ``GET`` → the figures of :func:`outbox.health.outbox_health`
as JSON, HTTP 200 while the lag is within ``OUTBOX["LAG_THRESHOLD_SECONDS"]``, 503 above it.

No login: load balancers and uptime checks call it. It shows numbers and times only (counts per
status, the lag, throughput), never an event's type, recipient or context. Computing the figures
reads the whole outbox table once, so an answer is reused for :data:`CACHE_SECONDS` by the
process that computed it: however often the endpoint is called, it costs each process at most one
pass per interval. Wrap it (``staff_member_required(health)``, a proxy rule) if even volume
figures are not for the public.
"""

from __future__ import annotations

import threading
import time

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .conf import outbox_settings
from .health import OutboxHealth, outbox_health

#: How long one process reuses the figures it computed.
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_cached: tuple[float, OutboxHealth] | None = None


def cached_health() -> OutboxHealth:
    """The figures, computed at most once per CACHE_SECONDS per process (and threshold)."""
    global _cached
    threshold = outbox_settings.lag_threshold_seconds
    # Held while computing: concurrent requests wait for one query instead of running their own.
    with _lock:
        now = time.monotonic()
        if _cached is None or now >= _cached[0] or _cached[1].lag_threshold_seconds != threshold:
            _cached = (now + CACHE_SECONDS, outbox_health(threshold))
        return _cached[1]


def clear_cache() -> None:
    global _cached
    with _lock:
        _cached = None


@never_cache
@require_safe
def health(request) -> JsonResponse:
    figures = cached_health()
    return JsonResponse(figures.as_dict(), status=200 if figures.healthy else 503)
