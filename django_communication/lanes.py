"""Delivery lanes: up to N provider calls in flight from one process.

The calling thread keeps the database: it adds saved messages with their provider (``add()``),
and ``pump()`` takes the send slots (RATE_LIMITS, in blocks), hands messages to the lanes, writes
the outcomes that arrived together (``Recorder.write_many()``) and fires ``message_sent``. Each
lane is a thread that opens one session per provider it meets (one SMTP connection per lane for
the ``django`` provider), prepares and sends the messages it takes, one at a time, and touches no
database (a rate-limited fallback provider takes its slot on the lane's own connection, closed
when the lane ends). Between two pumps the calling thread is free to compose the next messages
(streaming.py) while the lanes send.

At most 2N messages are handed to the lanes without their outcome written: N in flight and N
more either queued for the next free lane or answered and waiting for the write under way. So if
the process dies, at most 2N messages may have been accepted by the provider without their
outcome recorded (the duplicate window). With a rate limit, a message is handed only to a free
lane, at its slot, so no slot is used late. When the database does not take the outcomes (a lost
connection), they and the answers of the calls still in hand are kept in ``Recorder.unwritten``
(recorder.py) and the error raised.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from contextlib import ExitStack
from typing import Any

from django.db import DatabaseError, connections

from .delivery import Answer, attempt, failure, notify, prepare, stamp
from .exceptions import ProviderError
from .models import Message
from .providers.base import BaseProvider
from .ratelimit import Slots, slots_for
from .recorder import Recorder

#: Put on the work queue once per lane: no more messages.
STOP = None

#: A message for a lane: (the caller's key for it, the message, its provider).
Work = tuple[int, Message, BaseProvider]


class Lanes:
    """Up to ``width`` lane threads, started as work arrives and ended by close()."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self.answers: queue.SimpleQueue[tuple[int, Message, Answer]] = queue.SimpleQueue()
        self.waiting: deque[Work] = deque()
        self.threads: list[threading.Thread] = []
        self.slots: dict[str, Slots | None] = {}
        self.handed = self.answered = self.written = 0
        #: Answers taken from the lanes whose outcomes are not written yet.
        self.taken: list[tuple[int, Message, Answer]] = []
        self.recorder = Recorder()

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        self.close()
        finished = [*self.taken, *self.arrived()]
        if not finished:
            return
        if isinstance(exc, DatabaseError):
            # Kept for Recorder.write_unwritten() after the reconnect.
            for _, message, (fields, _) in finished:
                Recorder.unwritten[message.pk] = (message, stamp(message, fields))
            return
        # Something else stopped the send (composing a later chunk raised): the calls that
        # went out are recorded before the error goes on, so that no retry sends them again.
        self.record(finished)

    @property
    def backlog(self) -> int:
        """Messages added and not yet handed to a lane."""
        return len(self.waiting)

    @property
    def done(self) -> bool:
        """Every message added has its outcome written."""
        return not self.waiting and self.written == self.handed

    def add(self, items: list[tuple[int, Message]], provider: BaseProvider) -> None:
        if provider.name not in self.slots:
            self.slots[provider.name] = slots_for(provider.name)
        self.waiting.extend((key, message, provider) for key, message in items)

    def pump(self, block: bool = False) -> list[tuple[int, Message | ProviderError]]:
        """Hand out what the lanes may take now, then write the outcomes that have arrived
        (with ``block``, wait for one first, or for the next send slot) and return them by key.
        """
        wait = self.feed()
        arrived = self.taken = self.arrived()
        if not arrived and block and not self.done:
            try:
                arrived = self.taken = [self.answers.get(timeout=wait), *self.arrived()]
            except queue.Empty:
                return []  # the next send slot is due
        if not arrived:
            return []
        self.answered += len(arrived)
        self.feed()  # the lanes that answered go on while the outcomes are written
        self.record(arrived)
        self.taken = []
        self.written += len(arrived)
        return [(key, outcome) for key, _, (_, outcome) in arrived]

    def record(self, arrived: list[tuple[int, Message, Answer]]) -> None:
        """Write the outcomes together, then fire ``message_sent`` for those sent."""
        self.recorder.write_many(
            [(message, stamp(message, fields)) for _, message, (fields, _) in arrived]
        )
        for _, _, (_, outcome) in arrived:
            if isinstance(outcome, Message):
                notify(outcome, self.recorder)

    def feed(self) -> float | None:
        """Hand messages to the lanes while the duplicate window allows; return the seconds
        until the next send slot when a message waits for it (None: wait for an answer)."""
        paced = any(slots is not None for slots in self.slots.values())
        while self.waiting:
            if paced and self.handed - self.answered >= self.width:
                return None  # a rate-limited message goes only to a free lane, at its slot
            if self.handed - self.written >= 2 * self.width:
                return None
            key, message, provider = self.waiting[0]
            slots = self.slots[provider.name]
            if slots is not None:
                wait = slots.until_next(len(self.waiting))
                if wait > 0:
                    return wait
                slots.take()
            self.waiting.popleft()
            if len(self.threads) < min(self.width, self.handed - self.answered + 1):
                self.start_lane()
            self.work.put((key, message, provider))
            self.handed += 1
        return None

    def arrived(self) -> list[tuple[int, Message, Answer]]:
        arrived = []
        while True:
            try:
                arrived.append(self.answers.get_nowait())
            except queue.Empty:
                return arrived

    def start_lane(self) -> None:
        thread = threading.Thread(target=lane, args=(self.work, self.answers), daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        """Nothing new starts; the lanes finish the call in hand, then end."""
        self.waiting.clear()
        while True:
            try:
                self.work.get_nowait()
            except queue.Empty:
                break
        for thread in self.threads:
            if thread.is_alive():
                self.work.put(STOP)
        for thread in self.threads:
            thread.join()
        self.threads.clear()


def lane(
    work: queue.SimpleQueue[Work | None],
    answers: queue.SimpleQueue[tuple[int, Message, Answer]],
) -> None:
    """One lane: send what arrives on ``work`` until STOP, in one session per provider."""
    try:
        with ExitStack() as stack:
            #: Per provider: None once its session is open, or the exception opening it raised
            #: (each message for it reports that).
            sessions: dict[BaseProvider, Exception | None] = {}
            while (item := work.get()) is not STOP:
                key, message, provider = item
                if provider not in sessions:
                    try:
                        stack.enter_context(provider.session())
                        sessions[provider] = None
                    except Exception as exc:
                        sessions[provider] = exc
                broken = sessions[provider]
                if broken is not None:
                    answer = failure(ProviderError.of(broken, provider.name, message))
                else:
                    prepare(message, provider)
                    answer = attempt(message, provider)
                answers.put((key, message, answer))
    finally:
        connections.close_all()  # only this thread's connections, if it opened any
