"""A provider for the latency phase: records when it was called, does not send anything.

Registered as ``bench-latency`` in COMMUNICATION["PROVIDERS"] (bench/settings.py). Each call
appends ``<idempotency key>\t<time.time()>`` to $BENCH_LATENCY_FILE with one O_APPEND write, so
lines from several qcluster workers never interleave.
"""

from __future__ import annotations

import os
import time
import uuid

from django_communication.providers.base import EmailProvider


class LatencyProvider(EmailProvider):
    name = "bench-latency"

    def send(self, message) -> str:
        called = time.time()
        path = os.environ.get("BENCH_LATENCY_FILE")
        if path:
            line = f"{message.idempotency_key or ''}\t{called:.6f}\t{os.getpid()}\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return f"latency-{uuid.uuid4()}"
