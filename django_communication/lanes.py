"""Delivery lanes: up to N provider calls in flight from one process.

The calling thread keeps the database: it takes the send slots (RATE_LIMITS, in blocks), hands
messages to the lanes, writes the outcomes and fires ``message_sent``. Each lane is a thread
with its own provider session (one SMTP connection per lane for the ``django`` provider): it
prepares and sends the messages it is handed, one at a time, and touches no database (a
rate-limited fallback provider takes its slot on the lane's own connection, closed when the
lane ends).

A lane is handed its next message as soon as its answer has been taken, before that answer is
written: the outcomes that have arrived when the calling thread is free are written together
(``Recorder.write_many()``) while the lanes go on. So at most N messages are in flight and at
most N answered ones wait for the write under way: if the process dies, at most 2N messages
may have been accepted by the provider without their outcome recorded (the duplicate window).
When the database does not take the outcomes (a lost connection), they and the answers of the
calls still in hand are kept in ``Recorder.unwritten`` (recorder.py) and the error raised.
"""

from __future__ import annotations

import queue
import threading
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


def deliver_in_lanes(
    messages: list[Message], provider: BaseProvider, concurrency: int
) -> list[Message | ProviderError]:
    """deliver() with up to ``concurrency`` provider calls in flight."""
    width = min(concurrency, len(messages))
    work: queue.SimpleQueue[tuple[int, Message] | None] = queue.SimpleQueue()
    answers: queue.SimpleQueue[tuple[int, Answer]] = queue.SimpleQueue()
    lanes = [
        threading.Thread(target=lane, args=(provider, work, answers), daemon=True)
        for _ in range(width)
    ]
    for thread in lanes:
        thread.start()
    feeder = Feeder(messages, work, width, slots_for(provider.name))
    results: list[Any] = [None] * len(messages)
    recorded = 0
    try:
        with Recorder() as recorder:
            while recorded < len(messages):
                wait = feeder.feed()
                try:
                    arrived = [answers.get(timeout=wait)]
                except queue.Empty:
                    continue  # the next send slot is due
                while True:
                    try:
                        arrived.append(answers.get_nowait())
                    except queue.Empty:
                        break
                feeder.answered += len(arrived)
                feeder.feed()  # the lanes that answered go on while the outcomes are written
                recorder.write_many(
                    [
                        (messages[position], stamp(messages[position], fields))
                        for position, (fields, _) in arrived
                    ]
                )
                recorded += len(arrived)
                for position, (_, outcome) in arrived:
                    results[position] = outcome
                    if isinstance(outcome, Message):
                        notify(outcome, recorder)
    except DatabaseError:
        # The outcomes were not written: keep those of the calls still in hand too, for
        # Recorder.write_unwritten() after the reconnect.
        stop(work, lanes)
        while True:
            try:
                position, (fields, _) = answers.get_nowait()
            except queue.Empty:
                break
            message = messages[position]
            Recorder.unwritten[message.pk] = (message, stamp(message, fields))
        raise
    finally:
        stop(work, lanes)
    return results


def stop(
    work: queue.SimpleQueue[tuple[int, Message] | None], lanes: list[threading.Thread]
) -> None:
    """Nothing new starts; the lanes finish the call in hand, then end."""
    while True:
        try:
            work.get_nowait()
        except queue.Empty:
            break
    for thread in lanes:
        if thread.is_alive():
            work.put(STOP)
    for thread in lanes:
        thread.join()


class Feeder:
    """Hands messages to the lanes: one per free lane, each at its send slot (RATE_LIMITS)."""

    def __init__(
        self,
        messages: list[Message],
        work: queue.SimpleQueue[tuple[int, Message] | None],
        width: int,
        slots: Slots | None,
    ) -> None:
        self.messages, self.work, self.width, self.slots = messages, work, width, slots
        self.handed = self.answered = 0

    def feed(self) -> float | None:
        """Hand out what the free lanes can take now; return the seconds until the next send
        slot when one is waiting for it (None: wait for an answer)."""
        while self.handed < len(self.messages) and self.handed - self.answered < self.width:
            if self.slots is not None:
                wait = self.slots.until_next(len(self.messages) - self.handed)
                if wait > 0:
                    return wait
                self.slots.take()
            self.work.put((self.handed, self.messages[self.handed]))
            self.handed += 1
        return None


def lane(
    provider: BaseProvider,
    work: queue.SimpleQueue[tuple[int, Message] | None],
    answers: queue.SimpleQueue[tuple[int, Answer]],
) -> None:
    """One lane: a provider session, then send what arrives on ``work`` until STOP."""
    try:
        with ExitStack() as stack:
            try:
                stack.enter_context(provider.session())
                broken: Exception | None = None
            except Exception as exc:  # each message this lane takes reports it
                broken = exc
            while (item := work.get()) is not STOP:
                position, message = item
                if broken is not None:
                    answers.put(
                        (position, failure(ProviderError.of(broken, provider.name, message)))
                    )
                    continue
                prepare(message, provider)
                answers.put((position, attempt(message, provider)))
    finally:
        connections.close_all()  # only this thread's connections, if it opened any
