"""Providers the tests register through COMMUNICATION["PROVIDERS"] (``TEST_PROVIDERS``).

``scripted`` records every call in this process and fails on demand; ``filelog`` appends one line
per call to a file, so that calls made by several relay processes can be counted afterwards;
``failing`` always raises; ``email-only`` offers one channel.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from django.db import connection, connections

from django_communication.exceptions import ProviderError
from django_communication.models import Channel, Message
from django_communication.providers.base import BaseProvider, EmailProvider

TEST_PROVIDERS = {
    "scripted": "tests.providers.ScriptedProvider",
    "filelog": "tests.providers.FileLogProvider",
    "failing": "tests.providers.FailingProvider",
    "email-only": "tests.providers.EmailOnlyProvider",
    "lanes": "tests.providers.LaneProvider",
}

#: FileLogProvider appends "<idempotency key> <pid>" lines to this file.
LOG_ENV = "OUTBOX_TEST_LOG"
#: With these set, FileLogProvider blocks (before logging) on the call after the first N,
#: having created the marker file, so that a test can kill the relay in the middle of a batch.
BLOCK_AFTER_ENV = "OUTBOX_TEST_BLOCK_AFTER"
BLOCK_MARKER_ENV = "OUTBOX_TEST_BLOCK_MARKER"


def committed_status(pk) -> str | None:
    """The row's status as another connection sees it: only committed data is visible there."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                f"SELECT status FROM {Message._meta.db_table} WHERE id = %s",
                [Message._meta.pk.get_db_prep_value(pk, other)],
            )
            row = cursor.fetchone()
    finally:
        other.close()
    return row[0] if row else None


@dataclass(frozen=True)
class Call:
    """One ScriptedProvider.send: the message, and what the database said about it then."""

    key: str | None
    channel: str
    to: str
    pk: object
    in_atomic_block: bool
    #: With ``reset(record_status=True)``: the row's status as the sending connection sees it.
    status: str | None = None
    #: With ``reset(check_committed=True)``: as another connection sees it (committed data).
    committed_status: str | None = None


class ScriptedProvider(BaseProvider):
    """Records a Call per send. Fails with ``fail[channel]`` if set, else with the next of
    ``fail_with`` (None: that call succeeds); ``on_send(message)`` runs first."""

    name = "scripted"
    channels = frozenset(Channel.values)
    #: Reads the database in send() and fails in call order: one message at a time.
    thread_safe = False
    calls: list[Call] = []
    fail: dict[str, Exception] = {}
    fail_with: list[Exception | None] = []
    on_send = None
    record_status = False
    check_committed = False

    @classmethod
    def reset(cls, record_status: bool = False, check_committed: bool = False) -> None:
        """Forget calls and failures; the flags make each call read the row (a query each)."""
        cls.calls = []
        cls.fail = {}
        cls.fail_with = []
        cls.on_send = None
        cls.record_status = record_status or check_committed
        cls.check_committed = check_committed

    def send(self, message: Message) -> str:
        cls = type(self)
        cls.calls.append(
            Call(
                key=message.idempotency_key,
                channel=message.channel,
                to=message.to_address,
                pk=message.pk,
                in_atomic_block=connection.in_atomic_block,
                status=Message.objects.get(pk=message.pk).status if cls.record_status else None,
                committed_status=committed_status(message.pk) if cls.check_committed else None,
            )
        )
        if cls.on_send is not None:
            cls.on_send(message)
        error = cls.fail.get(message.channel)
        if error is None and cls.fail_with:
            error = cls.fail_with.pop(0)
        if error is not None:
            raise error
        return f"scripted-{len(cls.calls)}"


class FailingProvider(BaseProvider):
    name = "failing"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    error: Exception = ProviderError("mailbox unavailable", retryable=False)

    def send(self, message: Message) -> str:
        raise type(self).error


class EmailOnlyProvider(EmailProvider):
    name = "email-only"

    def send(self, message: Message) -> str:
        return "email-only-1"


class FileLogProvider(BaseProvider):
    name = "filelog"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    #: Counts its calls to block after the first N: one at a time.
    thread_safe = False
    sent_here = 0

    def send(self, message: Message) -> str:
        block_after = os.environ.get(BLOCK_AFTER_ENV)
        if block_after is not None and type(self).sent_here >= int(block_after):
            with open(os.environ[BLOCK_MARKER_ENV], "w") as marker:
                marker.write(str(message.pk))
            time.sleep(600)  # the test kills this process
        line = f"{message.idempotency_key or message.pk} {os.getpid()}\n".encode()
        fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one small O_APPEND write: lines from processes never interleave
        finally:
            os.close(fd)
        type(self).sent_here += 1
        return f"filelog-{message.pk}"


def read_log(path) -> list[tuple[str, int]]:
    """[(idempotency key, pid)] in the order the calls were logged."""
    if not os.path.exists(path):
        return []
    with open(path) as log:
        return [(key, int(pid)) for key, pid in (line.split() for line in log if line.strip())]


class LaneProvider(BaseProvider):
    """Thread-safe; records which thread sent what, the sessions opened and the most calls in
    flight at once. With ``meet`` set to N, each call waits (up to 10 s) until N calls are in
    flight together: calls made one at a time fail instead of passing slowly. ``fail`` is the
    set of addresses to refuse (retryable)."""

    name = "lanes"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    lock = threading.Lock()
    meet: threading.Barrier | None = None
    fail: frozenset[str] = frozenset()
    calls: list[tuple[str, str]] = []  # (address, thread name)
    sessions: list[str] = []
    in_flight = most_in_flight = 0
    #: Called at the start of each send (in the lane's thread).
    on_send = None

    @classmethod
    def reset(cls, meet: int = 0, fail: frozenset[str] = frozenset()) -> None:
        cls.meet = threading.Barrier(meet, timeout=10) if meet else None
        cls.fail, cls.calls, cls.sessions = fail, [], []
        cls.in_flight = cls.most_in_flight = 0
        cls.on_send = None

    def session(self):
        type(self).sessions.append(threading.current_thread().name)
        return super().session()

    def send(self, message: Message) -> str:
        cls = type(self)
        if cls.on_send is not None:
            cls.on_send(message)
        with cls.lock:
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
            cls.calls.append((message.to_address, threading.current_thread().name))
        try:
            if cls.meet is not None:
                cls.meet.wait()
            if message.to_address in cls.fail:
                raise ProviderError("refused", retryable=True)
            return f"lane-{message.pk}"
        finally:
            with cls.lock:
                cls.in_flight -= 1
