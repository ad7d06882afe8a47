"""send_many() at once: compose the requests a chunk at a time while the lanes (lanes.py) send the
chunks before, so rendering and the database work of the next messages overlap the provider
round trips of the last ones.

A chunk is composed when the lanes have fewer than ``concurrency`` messages left to hand out, and
only while ``stop()`` (if given) returns False: after a stop, the messages already composed are
still sent and the requests never composed get None as their result. With ``concurrency`` 1, or
for a provider that is not ``thread_safe``, a chunk is delivered one message at a time
(delivery.py) in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .composing import SendRequest, compose, repeated_keys
from .delivery import deliver
from .exceptions import CommunicationError
from .fallback import with_fallback
from .lanes import Lanes
from .models import Message
from .providers.base import BaseProvider

#: The fewest requests composed together (one query for idempotency keys, one for the
#: suppression list, one INSERT).
CHUNK = 32

Result = Message | CommunicationError | None


def send_stream(
    requests: Sequence[SendRequest],
    concurrency: int,
    stop: Callable[[], bool] | None = None,
) -> list[Result]:
    """Compose and deliver ``requests``; their results in order (None: not started)."""
    results: list[Result] = [None] * len(requests)
    repeats = repeated_keys(requests)
    todo = [position for position in range(len(requests)) if position not in repeats]
    size = max(CHUNK, concurrency)
    providers = Providers()
    with Lanes(concurrency) as lanes:
        composed = 0
        while True:
            for position, outcome in lanes.pump():
                results[position] = outcome
            if composed < len(todo) and lanes.backlog < concurrency:
                if stop is not None and stop():
                    todo = todo[:composed]
                    continue
                chunk = todo[composed : composed + size]
                composed += len(chunk)
                send_chunk(chunk, requests, results, lanes, providers, concurrency)
            elif lanes.done:
                break
            else:
                for position, outcome in lanes.pump(block=True):
                    results[position] = outcome
    for position, first in repeats.items():
        results[position] = results[first]
    return results


def send_chunk(
    chunk: list[int],
    requests: Sequence[SendRequest],
    results: list[Result],
    lanes: Lanes,
    providers: Providers,
    concurrency: int,
) -> None:
    """Compose the requests at positions ``chunk``; deliver their messages or add them to the
    lanes."""
    batch = compose([requests[position] for position in chunk])
    for index, result in enumerate(batch.results):
        results[chunk[index]] = result
    for channel, items in batch.pending.items():
        provider = providers.get(batch.providers[channel], channel)
        keyed = [(chunk[index], message) for index, message in items]
        if concurrency > 1 and len(requests) > 1 and provider.thread_safe:
            lanes.add(keyed, provider)
            continue
        outcomes = deliver([message for _, message in keyed], provider)
        for (position, _), outcome in zip(keyed, outcomes, strict=True):
            results[position] = outcome


class Providers:
    """Each channel's provider in its fallback chain, the same object for every chunk (a
    lane opens one session per provider object)."""

    def __init__(self) -> None:
        self.wrapped: dict[str, tuple[BaseProvider, BaseProvider]] = {}

    def get(self, provider: BaseProvider, channel: str) -> BaseProvider:
        primary, wrapped = self.wrapped.get(channel, (None, None))
        if primary is not provider:
            wrapped = with_fallback(provider, channel)
            self.wrapped[channel] = (provider, wrapped)
        assert wrapped is not None
        return wrapped
