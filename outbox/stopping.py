"""When a relay stops: on SIGTERM or SIGINT, or at a deadline (the django-q2 task's budget).

The relay checks ``requested`` before each claim and before each chunk of a batch is composed
(``send_many(stop=...)``); a request never interrupts a provider call.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: How often wait() looks at the flag: a signal handler only sets it (no lock is safe there).
POLL_SECONDS = 0.05


class Stop:
    def __init__(self, deadline: float | None = None) -> None:
        #: time.monotonic() after which the relay stops claiming; None: never.
        self.deadline = deadline
        self.signalled = False

    @property
    def requested(self) -> bool:
        return self.signalled or (self.deadline is not None and time.monotonic() >= self.deadline)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return early (True) when a stop is requested."""
        end = time.monotonic() + seconds
        while not self.requested:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_SECONDS, left))
        return True

    @contextmanager
    def on_signals(self, *signals: int) -> Iterator[Stop]:
        """Set the flag on ``signals`` (SIGTERM and SIGINT by default) while the block runs."""
        signals = signals or (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self.handle) for sig in signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle(self, signum: int, frame: object) -> None:
        self.signalled = True


#: A Stop that is never requested, for callers that do not stop.
NEVER = Stop()
