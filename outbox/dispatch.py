"""Sending: a batch's planned messages go to ``send_many()`` at once, in OUTBOX["CONCURRENCY"]
delivery lanes; each result is recorded on its event's outcome."""

from __future__ import annotations

import logging

from django.utils import timezone

from django_communication import SendRequest, send_many
from django_communication.choices import MessageStatus
from django_communication.deferral import NOW

from .conf import Rule
from .outcomes import EventOutcome
from .reconnect import CONNECTION_ERRORS

logger = logging.getLogger("outbox")


def dispatch(planned: list[tuple[EventOutcome, Rule, SendRequest]], concurrency: int = 1) -> int:
    """Send every planned request, up to ``concurrency`` provider calls in flight; note each
    message's provider and failure on its outcome. Returns how many messages a provider
    accepted now (not those an earlier attempt sent, which send_many() hands back)."""
    started = timezone.now()
    results = send_isolated([request for _, _, request in planned], concurrency)
    sent = 0
    for (outcome, rule, _), result in zip(planned, results, strict=True):
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
    return sent


def send_isolated(requests: list[SendRequest], concurrency: int = 1) -> list[object]:
    """send_many() for the batch, at once (never deferred: the claim has committed); if
    something other than a CommunicationError escapes it (a bug in a resolver...), each request
    again on its own, so only its event pays. A lost database connection is not a message's
    fault: it stops the batch (the relay reconnects)."""
    try:
        return send_many(requests, in_transaction=NOW, concurrency=concurrency)
    except CONNECTION_ERRORS:
        raise
    except Exception:
        logger.exception("outbox: a batch send raised; retrying its messages one by one")
    results: list[object] = []
    for request in requests:
        try:
            results += send_many([request], in_transaction=NOW)
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:
            results.append(exc)
    return results
