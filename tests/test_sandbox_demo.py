"""The sandbox project's README flow: migrate, then ``demo`` (twice), in a subprocess.

The demo's outbox part books BK-2001 in committed transactions and BK-2002 in one that rolls
back after emit() and after a direct send() (which waits for the commit): the relay must notify
about BK-2001, and nothing may ever be sent about BK-2002, which the tests check in the output
and in the sandbox database itself.

The subprocess cannot import the test-only packages, as after ``pip install -e .`` alone.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = ROOT / "sandbox"

#: Installed by the [test] extra, not by ``pip install -e .``: the sandbox must not need them.
TEST_ONLY = [
    "dj_database_url",
    "pytest",
    "pytest_django",
    "moto",
    "aiosmtpd",
    "playwright",
    "psycopg",
    "redis",
]

# Runs sandbox/manage.py as `python sandbox/manage.py ...` would, with the packages above hidden.
RUNNER = f"""
import runpy, sys
sys.modules.update(dict.fromkeys({TEST_ONLY!r}))
sys.path.insert(0, {str(SANDBOX)!r})
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path({str(SANDBOX / "manage.py")!r}, run_name="__main__")
"""


def manage(*args: str, db: Path) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    }
    env["SANDBOX_DB"] = str(db)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def sections(output: str) -> dict[str, str]:
    """The demo's output by numbered heading: {"4": "...", "5": "...", ...}."""
    found: dict[str, str] = {}
    number = "0"
    for line in output.splitlines():
        heading = re.match(r"(\d+)\. [A-Z]", line)
        if heading:
            number = heading.group(1)
        found[number] = found.get(number, "") + line + "\n"
    return found


def audit_rows(log: str) -> list[list[str]]:
    return [line.split() for line in log.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]


def query(db: Path, sql: str) -> list[tuple]:
    """Read the sandbox database directly: the demo's own report is not taken on trust."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def assert_nothing_about_the_rolled_back_booking(output: str, db: Path) -> None:
    # The only lines that name BK-2002 are the demo's narrative of the rollback.
    mentions = [line.strip() for line in output.splitlines() if "BK-2002" in line]
    assert len(mentions) == 2, mentions
    assert mentions[0].startswith("confirm_booking(customer, 'BK-2002') in a transaction: event ")
    assert mentions[1] == (
        "Booking BK-2002 (rolled back): no booking, no outbox event, no message. "
        "Nothing was sent about it."
    )
    assert "UNEXPECTED" not in output
    # And the database agrees: no booking, no event, no message, ever.
    assert query(db, "SELECT COUNT(*) FROM bookings_booking WHERE ref = 'BK-2002'") == [(0,)]
    assert query(
        db,
        "SELECT COUNT(*) FROM outbox_outboxevent "
        "WHERE idempotency_key LIKE '%BK-2002%' OR context LIKE '%BK-2002%'",
    ) == [(0,)]
    assert query(
        db,
        "SELECT COUNT(*) FROM django_communication_message "
        "WHERE subject LIKE '%BK-2002%' OR body_text LIKE '%BK-2002%' "
        "OR body_html LIKE '%BK-2002%'",
    ) == [(0,)]


def assert_committed_booking_notified(output: str, db: Path) -> None:
    part = sections(output)
    # The committed booking's events: confirmed (one email), cancelled (email and SMS fan-out).
    outbox = part["8"]
    events = [line.split() for line in outbox.splitlines() if line.startswith("    booking.")]
    assert sorted((row[0], row[2], row[3]) for row in events) == [
        ("booking.cancelled", "BK-2001", "dispatched"),
        ("booking.confirmed", "BK-2001", "dispatched"),
    ]
    messages = [line.split() for line in outbox.splitlines() if line.startswith("      -> ")]
    assert sorted((row[1], row[2], row[3]) for row in messages) == [
        ("email", "ada@example.com", "sent"),
        ("email", "ada@example.com", "sent"),
        ("sms", "+447911123456", "sent"),
    ]
    assert "  Outbox events (2, oldest first):" in outbox
    assert "  Messages sent about booking BK-2001 (committed): 3 of 3" in outbox
    assert query(db, "SELECT event_type, status FROM outbox_outboxevent ORDER BY event_type") == [
        ("booking.cancelled", "dispatched"),
        ("booking.confirmed", "dispatched"),
    ]
    assert query(
        db,
        "SELECT channel, status FROM django_communication_message "
        "WHERE idempotency_key LIKE 'outbox:%' ORDER BY channel",
    ) == [("email", "sent"), ("email", "sent"), ("sms", "sent")]


def assert_call_answered(db: Path) -> None:
    """One call about BK-1001, one keypad reply to it, and the booking confirmed."""
    calls = query(
        db,
        "SELECT id FROM django_communication_message "
        "WHERE channel = 'voice' AND direction = 'outbound' AND status = 'sent'",
    )
    assert len(calls) == 1
    assert query(
        db,
        "SELECT in_reply_to_id, body_text, status FROM django_communication_message "
        "WHERE channel = 'voice' AND direction = 'inbound'",
    ) == [(calls[0][0], "confirm", "received")]
    [(confirmed_at,)] = query(db, "SELECT confirmed_at FROM bookings_booking WHERE ref = 'BK-1001'")
    assert confirmed_at is not None


@pytest.mark.slow
def test_demo_sends_an_email_and_an_sms_and_prints_the_audit_log(tmp_path):
    db = tmp_path / "sandbox.sqlite3"
    manage("migrate", "--noinput", "-v0", db=db)

    first = manage("demo", db=db)
    part = sections(first)
    assert "EMAIL console-" in part["4"]  # the console provider's output
    assert "SMS console-" in part["4"]
    assert "Subject: Booking BK-1001 confirmed" in part["4"]
    assert part["4"].count("console-") == 3

    # Voice: the reminder call, printed by the console provider, answered with 1 (confirm).
    voice = part["5"]
    assert voice.count("VOICE console-") == 1
    assert "this is Sandbox Travel about your booking BK-1001. Press 1 to confirm it" in voice
    assert "Keypad choices:\n  1: confirm\n  2: cancel\n" in voice
    assert "booking_reminder -> voice +447911123456: sent" in voice
    assert "keypad reply {'1': 'confirm'} recorded, in reply to the call" in voice
    assert "booking BK-1001: confirmed (reply_received -> on_keypad_reply)" in voice
    assert_call_answered(db)

    # The outbox: BK-2001 committed twice (confirmed, cancelled), BK-2002 rolled back.
    assert (
        "confirm_booking(customer, 'BK-2001'): committed; event booking.confirmed written"
        in (part["6"])
    )
    assert "cancel_booking(BK-2001): committed; event booking.cancelled written" in part["6"]
    assert "the transaction rolled back" in part["6"]
    assert (
        "send() of its confirmation email in the same transaction: Message pending, waiting "
        "for the commit; nothing sent yet" in part["6"]
    )
    assert "the direct send() sent nothing" in part["6"]
    # Nothing is sent inside the transactions, nor after the rollback (the console provider
    # prints each message it is handed).
    assert "console-" not in part["6"]
    # The relay sends the committed booking's three messages, and only them.
    relay = part["7"]
    assert relay.count("console-") == 3
    assert relay.count("EMAIL console-") == 2 and relay.count("SMS console-") == 1
    assert "Subject: Booking BK-2001 confirmed" in relay
    assert "Subject: Booking BK-2001 cancelled" in relay
    assert "\nBooking BK-2001 cancelled. Sandbox Travel\n" in relay  # the SMS
    assert "Outbox drained: events dispatched 2, retried 0, dead 0; messages sent 3." in relay
    assert_committed_booking_notified(first, db)
    assert_nothing_about_the_rolled_back_booking(first, db)

    log = part["9"]
    rows = audit_rows(log)
    email_rows = [row for row in rows if row[2:4] == ["email", "transactional"]]
    sms_rows = [row for row in rows if row[2:4] == ["sms", "reminder"]]
    outbox_rows = [row for row in rows if row[-2:] == ["booking", "BK-2001"]]
    assert len(email_rows) == 4 and len(sms_rows) == 1  # 2 direct + 2 outbox emails
    assert len(outbox_rows) == 3
    assert all(row[4] == "sent" for row in email_rows + sms_rows + outbox_rows)
    assert "+447911123456" in sms_rows[0]
    voice_rows = [row for row in rows if row[2] == "voice"]
    assert [(row[4], row[5]) for row in voice_rows] == [
        ("received", "+15005550006"),  # the reply, from the callee to our number
        ("sent", "+447911123456"),
    ]
    assert "(8 of 8 messages shown)" in log

    # The localized confirmation: the French variant, a French date, the PDF and the invite.
    localized = part["10"]
    assert localized.count("EMAIL console-") == 1
    assert "Subject: Réservation BK-3001 confirmée" in localized
    assert re.search(r"du \d{1,2} [a-zéû]+ \d{4} est confirmée", localized)
    assert "[Attachment] facture-BK-3001.pdf (application/pdf, " in localized
    assert "[Attachment] BK-3001.ics (text/calendar, " in localized
    assert "-> email camille@example.fr in 'fr': sent" in localized
    [(language, attachments)] = query(
        db,
        "SELECT language, attachments FROM django_communication_message "
        "WHERE to_address = 'camille@example.fr'",
    )
    assert language == "fr"
    stored = {item["name"]: item for item in json.loads(attachments)}
    assert sorted(stored) == ["BK-3001.ics", "facture-BK-3001.pdf"]
    pdf = (tmp_path / "media" / stored["facture-BK-3001.pdf"]["path"]).read_bytes()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    ics = (tmp_path / "media" / stored["BK-3001.ics"]["path"]).read_text()
    assert "METHOD:REQUEST" in ics and "ATTENDEE;RSVP=TRUE:mailto:camille@example.fr" in ics

    # Idempotent: a second run sends nothing new and still shows the log.
    second = manage("demo", db=db)
    assert "console-" not in second.split("9. Audit log", 1)[0]
    assert second.count("already sent earlier") == 4
    assert "keypad reply 1 (confirm): already recorded earlier" in second
    assert_call_answered(db)
    assert second.count("already written earlier, not written again") == 2
    assert "Outbox drained: events dispatched 0, retried 0, dead 0; messages sent 0." in second
    assert_committed_booking_notified(second, db)
    assert_nothing_about_the_rolled_back_booking(second, db)
    assert "(9 of 9 messages shown)" in second
    assert "in 'fr': sent in an earlier run, not sent again" in second

    # --resend sends fresh copies of the direct sends and the call; the outbox nothing again.
    third = manage("demo", "--resend", db=db)
    assert "SMS console-" in third and "VOICE console-" in third
    assert "Outbox drained: events dispatched 0, retried 0, dead 0; messages sent 0." in third
    assert_nothing_about_the_rolled_back_booking(third, db)
    assert "(14 of 14 messages shown)" in third


@pytest.mark.slow
def test_sandbox_has_no_missing_migrations(tmp_path):
    manage("makemigrations", "bookings", "--check", "--dry-run", db=tmp_path / "db.sqlite3")
