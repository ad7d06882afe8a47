"""Providers for the outbox tests, registered through COMMUNICATION["PROVIDERS"].

``scripted`` records calls in this process and fails on demand; ``filelog`` appends one line per
call to a file, so that calls made by several relay processes can be counted afterwards.
"""

from __future__ import annotations

import os
import time

from django_communication.models import Channel, Message
from django_communication.providers.base import BaseProvider

OUTBOX_PROVIDERS = {
    "scripted": "tests.outbox_providers.ScriptedProvider",
    "filelog": "tests.outbox_providers.FileLogProvider",
}

#: FileLogProvider appends "<idempotency key> <pid>" lines to this file.
LOG_ENV = "OUTBOX_TEST_LOG"
#: With these set, FileLogProvider blocks (before logging) on the call after the first N,
#: having created the marker file, so that a test can kill the relay in the middle of a batch.
BLOCK_AFTER_ENV = "OUTBOX_TEST_BLOCK_AFTER"
BLOCK_MARKER_ENV = "OUTBOX_TEST_BLOCK_MARKER"


class ScriptedProvider(BaseProvider):
    """Records (idempotency key, channel, address) per call; raises ``fail[channel]`` if set."""

    name = "scripted"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    calls: list[tuple[str, str, str]] = []
    fail: dict[str, Exception] = {}
    on_send = None

    @classmethod
    def reset(cls) -> None:
        cls.calls = []
        cls.fail = {}
        cls.on_send = None

    def send(self, message: Message) -> str:
        type(self).calls.append((message.idempotency_key, message.channel, message.to_address))
        if type(self).on_send is not None:
            type(self).on_send(message)
        error = self.fail.get(message.channel)
        if error is not None:
            raise error
        return f"scripted-{len(self.calls)}"


class FileLogProvider(BaseProvider):
    name = "filelog"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
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
