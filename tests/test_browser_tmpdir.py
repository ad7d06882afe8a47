"""The browser tests run whatever the temp dir's length (nox's .nox/<session>/tmp in a deep
checkout): Chromium gets a short temp dir of its own for its singleton socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, short_temp_dir

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
#: A Unix socket path holds about 107 bytes; the temp dir alone is longer than that here.
SOCKET_PATH_LIMIT = 107


def test_short_temp_dir_ignores_a_long_tmpdir(tmp_path, monkeypatch):
    long = tmp_path / ("d" * 120)
    long.mkdir()
    monkeypatch.setenv("TMPDIR", str(long))
    temp = short_temp_dir()
    try:
        # Room left for Chromium's ".org.chromium.Chromium.XXXXXX/SingletonSocket".
        assert len(temp) + len("/.org.chromium.Chromium.XXXXXX/SingletonSocket") < 107
        assert not temp.startswith(str(long))
    finally:
        os.rmdir(temp)


def test_browser_tests_pass_under_a_temp_dir_longer_than_a_socket_path(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    long = tmp_path / ("nox-session-" * 8) / "tmp"
    long.mkdir(parents=True)
    assert len(str(long)) > SOCKET_PATH_LIMIT
    env = {
        **os.environ,
        "TMPDIR": str(long),
        # A database of its own: the child must not touch this session's test database.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_admin_browser.py::test_filter_message_log_by_status",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
