"""The sandbox project's README flow: migrate, then ``demo`` (twice), in a subprocess.

The subprocess cannot import the test-only packages, as after ``pip install -e .`` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.slow
def test_demo_sends_an_email_and_an_sms_and_prints_the_audit_log(tmp_path):
    db = tmp_path / "sandbox.sqlite3"
    manage("migrate", "--noinput", "-v0", db=db)

    first = manage("demo", db=db)
    assert "EMAIL console-" in first  # the console provider's output
    assert "SMS console-" in first
    assert "Subject: Booking BK-1001 confirmed" in first
    log = first.split("5. Audit log", 1)[1]
    lines = [line.split() for line in log.splitlines()]
    email_rows = [row for row in lines if row[2:4] == ["email", "transactional"]]
    sms_rows = [row for row in lines if row[2:4] == ["sms", "reminder"]]
    assert len(email_rows) == 2 and len(sms_rows) == 1
    assert all(row[4] == "sent" for row in email_rows + sms_rows)
    assert "+447911123456" in sms_rows[0]
    assert "(3 of 3 messages shown)" in log

    # Idempotent: a second run sends nothing new and still shows the log.
    second = manage("demo", db=db)
    assert "console-" not in second.split("5. Audit log", 1)[0]
    assert second.count("already sent earlier") == 3
    assert "(3 of 3 messages shown)" in second

    # --resend sends fresh copies.
    third = manage("demo", "--resend", db=db)
    assert "SMS console-" in third
    assert "(6 of 6 messages shown)" in third


@pytest.mark.slow
def test_sandbox_has_no_missing_migrations(tmp_path):
    manage("makemigrations", "bookings", "--check", "--dry-run", db=tmp_path / "db.sqlite3")
