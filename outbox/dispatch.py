"""Sending: a batch's planned messages go to ``send_many()`` at once, in OUTBOX["CONCURRENCY"]
delivery lanes, composed a chunk at a time until a stop is requested; each result is recorded on
its event's outcome."""

from __future__ import annotations

import logging

from django.utils import timezone

from django_communication import SendRequest, send_many
from django_communication.choices import MessageStatus
from django_communication.deferral import NOW

from .conf import Rule
from .outcomes import EventOutcome
from .reconnect import CONNECTION_ERRORS
from .stopping import NEVER, Stop

logger = logging.getLogger("outbox")


def dispatch(
    planned: list[tuple[EventOutcome, Rule, SendRequest]],
    concurrency: int = 1,
    stop: Stop = NEVER,
) -> tuple[int, list[EventOutcome]]:
    """Send every planned request, up to ``concurrency`` provider calls in flight, until a stop
    is requested; note each message's provider and failure on its outcome. Returns how many
    messages a provider accepted now (not those an earlier attempt sent, which send_many() hands
    back) and the outcomes of the events with a message not started (to release)."""
    started = timezone.now()
    results = send_isolated([request for _, _, request in planned], concurrency, stop)
    sent = 0
    unstarted: dict[int, EventOutcome] = {}
    for (outcome, rule, _), result in zip(planned, results, strict=True):
        if result is None:
            unstarted.setdefault(id(outcome), outcome)
            continue
        provider = getattr(result, "provider", "")  # a Message or a ProviderError has one
        if provider and provider not in outcome.providers:
            outcome.providers.append(provider)
        outcome.messages += 1
        if isinstance(result, Exception):
            outcome.fail(rule, result)
        else:
            outcome.sent += 1
            if result.status == MessageStatus.SENT and result.sent_at and result.sent_at >= started:
                sent += 1
    return sent, list(unstarted.values())


def send_isolated(
    requests: list[SendRequest], concurrency: int = 1, stop: Stop = NEVER
) -> list[object]:
    """send_many() for the batch, at once (never deferred: the claim has committed), asking
    ``stop`` before each chunk; if something other than a CommunicationError escapes it (a bug
    in a resolver...), each request again on its own, so only its event pays. A lost database
    connection is not a message's fault: it stops the batch (the relay reconnects)."""
    stopping = (lambda: stop.requested) if stop is not NEVER else None
    try:
        return send_many(requests, in_transaction=NOW, concurrency=concurrency, stop=stopping)
    except CONNECTION_ERRORS:
        raise
    except Exception:
        logger.exception("outbox: a batch send raised; retrying its messages one by one")
    results: list[object] = []
    for request in requests:
        if stop.requested:
            results.append(None)
            continue
        try:
            results += send_many([request], in_transaction=NOW)
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:
            results.append(exc)
    return results
