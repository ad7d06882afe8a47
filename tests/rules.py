"""OUTBOX["RULES"] for every outbox test (the ``outbox`` fixture and the relay processes)."""

from __future__ import annotations

RULES = {
    "booking.confirmed": {"template_key": "booking_confirmation", "message_type": "transactional"},
    "booking.cancelled": [
        {"template_key": "booking_cancelled", "channel": "email"},
        {"template_key": "booking_cancelled", "channel": "sms"},
    ],
    "booking.reminder": [
        {"template_key": "booking_cancelled", "message_type": "reminder"},
        {"template_key": "booking_confirmation", "message_type": "reminder", "channel": "email"},
    ],
    "booking.note": {"template_key": "booking_cancelled"},
    "booking.missing_template": {"template_key": "no_such_template", "channel": "email"},
    "booking.broken_template": {"template_key": "broken", "channel": "email"},
    # The relay processes' events (template "ping"; tests.processes).
    "proc.one": {"template_key": "ping", "channel": "email"},
    "proc.two": [
        {"template_key": "ping", "channel": "email"},
        {"template_key": "ping", "channel": "sms"},
    ],
}
