"""Who sees what from the health view, which status a lagging outbox answers, and how often it
is logged (issue 18)."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import override_settings
from django.urls import include, path, reverse
from django.utils import timezone

from outbox import views
from outbox.checks import check_outbox_settings
from outbox.models import OutboxEvent, OutboxStatus

urlpatterns = [path("outbox/", include("outbox.urls"))]
pytestmark = pytest.mark.urls(__name__)

TOKEN = "k3Q9w-health-probe-token-0123456789abcdef"
FIGURES = {"lag_seconds", "counts", "dead_last_hour", "dispatched_per_minute", "oldest_due_at"}


@pytest.fixture(autouse=True)
def _fresh_view(settings):
    settings.OUTBOX = {"HEALTH_TOKEN": TOKEN}
    views.clear_cache()
    yield
    views.clear_cache()


@pytest.fixture
def clock(monkeypatch):
    """The view's cache clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(views, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def lagging() -> OutboxEvent:
    """An event due for an hour: over the default five-minute threshold."""
    return OutboxEvent.objects.create(
        event_type="booking.confirmed",
        status=OutboxStatus.PENDING,
        available_at=timezone.now() - timedelta(hours=1),
    )


def get(client, **headers):
    return client.get(reverse("outbox:health"), **headers)


def test_an_anonymous_caller_learns_only_whether_it_is_healthy(client, db):
    response = get(client)
    assert (response.status_code, response.json()) == (200, {"healthy": True})

    lagging()
    views.clear_cache()
    response = get(client)
    assert (response.status_code, response.json()) == (503, {"healthy": False})


def test_staff_see_the_figures(admin_client, db):
    lagging()
    data = get(admin_client).json()
    assert data["healthy"] is False
    assert set(data) >= FIGURES
    assert data["counts"]["pending"] == 1


def test_a_logged_in_user_who_is_not_staff_does_not(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_user("someone", password="x"))
    assert get(client).json() == {"healthy": True}


@pytest.mark.parametrize(
    ("header", "sees_figures"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer  {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        ("Bearer ", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        (f"Bearer {TOKEN.upper()}", False),
    ],
)
def test_a_caller_with_the_token_sees_the_figures(client, db, header, sees_figures):
    data = get(client, HTTP_AUTHORIZATION=header).json()
    assert (set(data) >= FIGURES) is sees_figures
    if not sees_figures:
        assert data == {"healthy": True}


def test_without_a_configured_token_no_header_opens_the_figures(client, db, settings):
    settings.OUTBOX = {}
    for header in ("Bearer ", "Bearer None", "Bearer null", f"Bearer {TOKEN}"):
        assert get(client, HTTP_AUTHORIZATION=header).json() == {"healthy": True}


def test_a_lagging_outbox_can_answer_200(client, db, settings):
    """For a probe that reads the body and must not take a web server out of service."""
    settings.OUTBOX = {"HEALTH_TOKEN": TOKEN, "HEALTH_LAGGING_STATUS": 200}
    lagging()
    response = get(client)
    assert (response.status_code, response.json()) == (200, {"healthy": False})


def test_the_state_is_logged_once_per_change_not_per_request(client, db, clock, caplog):
    caplog.set_level(logging.INFO)

    def checks(count: int) -> list[int]:
        statuses = []
        for _ in range(count):
            clock[0] += views.CACHE_SECONDS  # each call computes the figures afresh
            statuses.append(get(client).status_code)
        return statuses

    def records() -> list[tuple[str, int]]:
        found = [(r.name, r.levelno) for r in caplog.records]
        caplog.clear()
        return found

    assert checks(3) == [200] * 3
    assert records() == []  # healthy from the start: nothing to say

    event = lagging()
    assert checks(5) == [503] * 5
    assert records() == [("outbox", logging.WARNING)]  # and no django.request ERROR per probe

    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DISPATCHED)
    assert checks(3) == [200] * 3
    assert records() == [("outbox", logging.INFO)]

    lagging()
    assert checks(2) == [503] * 2
    assert records() == [("outbox", logging.WARNING)]


def test_the_warning_says_what_lags(client, db, caplog):
    lagging()
    get(client)
    [record] = [r for r in caplog.records if r.name == "outbox"]
    assert "oldest due event has waited 1 h" in record.getMessage()
    assert "threshold 5 min" in record.getMessage()


# --------------------------------------------------------------------------- checks


def ids(outbox) -> list[str]:
    with override_settings(OUTBOX=outbox):
        return [message.id for message in check_outbox_settings()]


@pytest.mark.parametrize(
    "outbox",
    [
        {"HEALTH_TOKEN": None},
        {"HEALTH_TOKEN": TOKEN},
        {"HEALTH_LAGGING_STATUS": 503},
        {"HEALTH_LAGGING_STATUS": 200},
    ],
)
def test_valid_health_settings_pass(outbox):
    assert ids(outbox) == []


@pytest.mark.parametrize(
    ("outbox", "expected"),
    [
        ({"HEALTH_TOKEN": ""}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": "short"}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": "x" * 31}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": "with a space " + "x" * 32}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": "x" * 32 + "\n"}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": b"x" * 40}, ["outbox.E009"]),
        ({"HEALTH_TOKEN": 12345678901234567890123456789012345}, ["outbox.E009"]),
        ({"HEALTH_LAGGING_STATUS": 500}, ["outbox.E010"]),
        ({"HEALTH_LAGGING_STATUS": "503"}, ["outbox.E010"]),
        ({"HEALTH_LAGGING_STATUS": True}, ["outbox.E010"]),
        ({"HEALTH_TOKEN": "x", "HEALTH_LAGGING_STATUS": None}, ["outbox.E009", "outbox.E010"]),
    ],
)
def test_malformed_health_settings_have_their_own_id(outbox, expected):
    assert ids(outbox) == expected
