"""Provider fallback: ``COMMUNICATION["FALLBACK"] = {"email": ["django"]}``.

When the singleton's provider for a channel fails a message with a retryable error (an outage,
throttling past its own retries, a 5xx), the message is handed to the next provider of the
channel's list, and so on; a permanent error (a rejected address, a bad request) stops there.
Failures that fell through are not written on their own: the message is written once, ``sent``
by the provider that accepted it (``Message.provider``) with what failed before in
``Message.error`` (``"ses: EndpointConnectionError: ... (retryable); sent by django"``), or
``failed`` with every provider's error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .exceptions import ConfigurationError, ProviderError
from .models import MessageStatus
from .providers.registry import provider_for_channel

if TYPE_CHECKING:
    from .models import Message
    from .providers.base import BaseProvider


def deliver_with_fallback(
    messages: list[Message], provider: BaseProvider, names: Sequence[str]
) -> list[Message | ProviderError]:
    """deliver() through ``provider``, then each provider of ``names`` for the messages the
    previous one failed retryably."""
    from .sending import deliver, record

    channel = messages[0].channel
    chain = [name for name in dict.fromkeys(names) if name != provider.name]
    outcomes = deliver(messages, provider, fall_through=bool(chain))
    history: dict[int, str] = {}
    last_tried = provider
    for position, name in enumerate(chain):
        waiting = [i for i, outcome in enumerate(outcomes) if fell_through(outcome)]
        if not waiting:
            break
        for i in waiting:
            history[i] = join(history.get(i), str(outcomes[i]))
        try:
            fallback = provider_for_channel(channel, name)
        except ConfigurationError as exc:  # the next fallback is tried; see also the checks
            for i in waiting:
                outcomes[i] = ProviderError(
                    str(exc), retryable=True, provider=name, message=messages[i]
                )
                outcomes[i].fell_through = True
            continue
        last_tried = fallback
        again = deliver(
            [messages[i] for i in waiting],
            fallback,
            fall_through=position < len(chain) - 1,
            failed_before=[history[i] for i in waiting],
        )
        for i, outcome in zip(waiting, again, strict=True):
            outcomes[i] = outcome
    # Left over only when the last fallbacks could not be built: record them as failed.
    for i, outcome in enumerate(outcomes):
        if fell_through(outcome):
            outcome.fell_through = False
            error = join(history.get(i), str(outcome)) if i in history else outcome.description
            record(messages[i], last_tried, status=MessageStatus.FAILED, error=error)
    return outcomes


def fell_through(outcome: object) -> bool:
    return isinstance(outcome, ProviderError) and getattr(outcome, "fell_through", False)


def join(before: str | None, failure: str) -> str:
    return f"{before}; {failure}" if before else failure
