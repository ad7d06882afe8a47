"""Playwright fixtures for browser tests, driving the system's Chromium (never a downloaded one).

Loaded as a pytest plugin from conftest.py. Tests that use it are marked ``@pytest.mark.browser``
and run against pytest-django's ``live_server`` (which implies ``transactional_db``)::

    @pytest.mark.browser
    def test_something(admin_page, live_server):
        admin_page.goto(live_server.url + "/admin/")
        save_screenshot(admin_page, "admin-index")

The browser only talks to the live server: every other request is aborted, so nothing reaches
the network. Screenshots land in ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ADMIN_USERNAME = "browser-admin"
ADMIN_PASSWORD = "browser-admin-password"
#: Chromium puts its singleton socket under the temp dir, and a Unix socket path has a limit of
#: about 107 bytes: a long TMPDIR (nox's .nox/<session>/tmp in a deep checkout) kills the launch.
SHORT_TEMP_ROOT = "/tmp"


def short_temp_dir() -> str:
    """A fresh temp dir with a short path, whatever TMPDIR says."""
    root = SHORT_TEMP_ROOT if os.path.isdir(SHORT_TEMP_ROOT) else None
    return tempfile.mkdtemp(prefix="pw-", dir=root)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    # Playwright's sync API keeps an asyncio loop running in this thread, which trips Django's
    # async-unsafe guard on every ORM call the test makes while the browser is open.
    # The Playwright driver (which makes the profile dir) and Chromium (its singleton socket)
    # both take their temp dir from the environment: give them a short one of their own.
    temp = short_temp_dir()
    overrides = {"DJANGO_ALLOW_ASYNC_UNSAFE": "true", "TMPDIR": temp, "TMP": temp, "TEMP": temp}
    previous = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def page(browser, live_server) -> Iterator:
    """A fresh browser context and page that may only reach the live server."""
    allowed = urlsplit(live_server.url).netloc
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(15_000)

    def only_live_server(route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob", "about") or url.netloc == allowed:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_live_server)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def browser_superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser(
        username=ADMIN_USERNAME, email="browser-admin@example.com", password=ADMIN_PASSWORD
    )


@pytest.fixture
def admin_page(page, live_server, browser_superuser):
    """``page``, logged in to the admin as a superuser."""
    admin_login(page, live_server.url, ADMIN_USERNAME, ADMIN_PASSWORD)
    return page


def admin_login(page, base_url: str, username: str, password: str) -> None:
    """Log in through the admin's login form; fail clearly if the login is refused."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def save_screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` as ``test-artifacts/<name>.png`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "screenshot"
    path = ARTIFACTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
