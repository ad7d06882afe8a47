"""Sessions: tests (Django x Python matrix, SQLite then PostgreSQL), lint, demo, bench.

nox -s tests            every combination below: the fast suite on each; on the newest
                        (FULL) the slow (multi-process) tests too, and the browser tests
                        on SQLite
nox -s "tests(python='3.11', django='5.2')"
nox -s lint demo bench
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
MATRIX = [("3.11", "4.2"), ("3.11", "5.2"), ("3.12", "6.0")]
#: The combination that also runs the slow (multi-process) tests, on both databases, and the
#: browser tests, on SQLite: what they add (processes, row locks, the admin's pages in Chromium)
#: depends little on the Django and Python versions, which the fast suite covers on every
#: combination. A -m in posargs (nox -s tests -- -m slow) replaces this selection.
FULL = MATRIX[-1]
SELECTION = {
    # (full combination, database) -> marker expression; None: every test
    (True, "sqlite"): None,
    (True, "postgresql"): "not browser",
    (False, "sqlite"): "not slow and not browser",
    (False, "postgresql"): "not slow and not browser",
}


def pytest_command(session: nox.Session, full: bool, database: str) -> list[str]:
    selection = SELECTION[full, database]
    return ["pytest", *(["-m", selection] if selection else []), *session.posargs]


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def database_url(session: nox.Session, name: str) -> str:
    # One test database per session, so parallel sessions never share one.
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@nox.session
@nox.parametrize("python,django", MATRIX)
def tests(session: nox.Session, django: str) -> None:
    """The suite on SQLite, then PostgreSQL (required under CI); slow and browser on FULL only."""
    full = (session.python, django) == FULL
    session.install("-e", ".[test]", f"django~={django}.0")
    session.run(
        "python",
        "-m",
        "django",
        "makemigrations",
        "--check",
        "--dry-run",
        env={"DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    tmp = Path(session.create_tmp())
    sqlite = f"sqlite:///{tmp / 'db.sqlite3'}"
    session.run(*pytest_command(session, full, "sqlite"), env={"DATABASE_URL": sqlite})
    if postgres_reachable():
        name = f"ci_{session.python.replace('.', '')}_{django.replace('.', '')}"
        postgres = database_url(session, name)
        session.run(*pytest_command(session, full, "postgresql"), env={"DATABASE_URL": postgres})
    elif os.environ.get("CI"):
        session.error("PostgreSQL is not reachable on 127.0.0.1:5432; CI runs on both databases.")
    else:
        session.warn("PostgreSQL not reachable on 127.0.0.1:5432: ran on SQLite only.")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The sandbox demo on SQLite: migrate, then seed templates and send through the console."""
    session.install("-e", ".")
    session.run("python", "sandbox/manage.py", "migrate", "--verbosity", "0")
    session.run("python", "sandbox/manage.py", "demo")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Ours against django-post-office on the same workload, SQLite and PostgreSQL."""
    session.install("-e", ".[postgres]", "django-post-office==3.12.0")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python="3.11")
def soak(session: nox.Session) -> None:
    """RSS of a process sending through SES (moto on loopback): nox -s soak -- --minutes 10."""
    session.install("-e", ".[test]")
    session.run("python", "bench/soak_ses.py", *session.posargs)
