"""The workload both sides send: the peer script's template text, contexts and recipients.

They are imported from the reference peer benchmark (``../shared/bench/peer_post_office.py``
relative to the repository, or $BENCH_PEER_SCRIPT) so both sides render exactly the same text;
the copy below is used only when that file is not there, and ``SOURCE`` says which one ran.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = Path(
    os.environ.get("BENCH_PEER_SCRIPT", REPO.parent / "shared" / "bench" / "peer_post_office.py")
)

# ---- fallback copy of peer_post_office.py (keep identical)
TEMPLATE_NAME = "booking_confirmation"
TEMPLATE_SUBJECT = "Booking {{ ref }} confirmed"
TEMPLATE_TEXT = (
    "Hello {{ name }},\n\n"
    "your booking {{ ref }} is confirmed. Check-in: {{ checkin }}.\n"
    "Please keep this reference for your records.\n\n"
    "-- The Bookings Team\n"
)
TEMPLATE_HTML = (
    "<html><body>"
    "<p>Hello {{ name }},</p>"
    "<p>your booking <strong>{{ ref }}</strong> is confirmed. "
    "Check-in: <em>{{ checkin }}</em>.</p>"
    "<p>Please keep this reference for your records.</p>"
    "<p>-- The Bookings Team</p>"
    "</body></html>"
)
SENDER = "bookings@example.com"


def contexts(n: int, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "ref": f"{prefix}BK{i:07d}",
            "name": f"Guest {prefix}{i}",
            "checkin": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
        for i in range(n)
    ]


def recipient(i: int, prefix: str = "") -> str:
    return f"guest.{prefix}{i}@example.com"


SOURCE = "bench/workload.py (fallback copy)"

if PEER_SCRIPT.is_file():
    _spec = importlib.util.spec_from_file_location("peer_post_office", PEER_SCRIPT)
    if _spec is not None and _spec.loader is not None:
        _peer = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_peer)
        TEMPLATE_NAME = _peer.TEMPLATE_NAME
        TEMPLATE_SUBJECT = _peer.TEMPLATE_SUBJECT
        TEMPLATE_TEXT = _peer.TEMPLATE_TEXT
        TEMPLATE_HTML = _peer.TEMPLATE_HTML
        SENDER = _peer.SENDER
        contexts = _peer.contexts
        recipient = _peer.recipient
        SOURCE = str(PEER_SCRIPT)
