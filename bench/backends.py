"""Email backends with a round trip: ``--latency-ms N`` makes both sides' backend wait N ms per
message before handing it over, as an SMTP server or the SES API answers after a network round
trip. The wait is ``time.sleep``: it releases the GIL, as a socket read does.

    BENCH_LATENCY_MS   milliseconds per message (0: no wait)
"""

from __future__ import annotations

import os
import time

from django.core.mail.backends import dummy, locmem


def round_trip() -> None:
    delay = float(os.environ.get("BENCH_LATENCY_MS") or 0) / 1000
    if delay > 0:
        time.sleep(delay)


class LocmemRoundTrip(locmem.EmailBackend):
    def send_messages(self, messages):
        for _ in messages:
            round_trip()
        return super().send_messages(messages)


class DummyRoundTrip(dummy.EmailBackend):
    def send_messages(self, messages):
        for _ in messages:
            round_trip()
        return super().send_messages(messages)
