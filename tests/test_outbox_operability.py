"""Operating the outbox: the health figures, ``outbox_status``, the health view, the admin's
header, the relay's structured log records and the JSON formatter."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import include, path, reverse
from django.utils import timezone

from django_communication.exceptions import ProviderError
from outbox import emit, views
from outbox.checks import check_outbox_settings
from outbox.claim import claim
from outbox.finalize import finalize
from outbox.health import format_seconds, outbox_health
from outbox.logging import JsonFormatter, log_event
from outbox.management.commands.outbox_status import Command as OutboxStatusCommand
from outbox.models import OutboxEvent, OutboxStatus
from outbox.outcomes import EventOutcome
from outbox.relay import drain, process_batch
from tests.events import make_event
from tests.providers import ScriptedProvider
from tests.rules import RULES

# The health view, mounted as the README says (for the tests marked with this module's urls).
urlpatterns = [path("outbox/", include("outbox.urls"))]

CHANGELIST = "admin:outbox_outboxevent_changelist"
EVENT_FIELDS = {
    "outcome",
    "event_id",
    "event_type",
    "attempt",
    "provider",
    "claim_token",
    "error",
    "retry_at",
}


@pytest.fixture
def crafted(db):
    """A known outbox: the oldest due event has waited ten minutes."""
    now = timezone.now()
    minutes = lambda n: now - timedelta(minutes=n)  # noqa: E731
    make_event(available_at=minutes(10))  # due for ten minutes: the lag
    make_event(available_at=minutes(2))  # due for two
    # A relay died holding this one: due again since its lease ended three minutes ago.
    make_event(available_at=minutes(3), claim_token=uuid.uuid4(), attempts=1)
    # Not due: leased right now, or waiting for a retry.
    make_event(available_at=now + timedelta(minutes=4), claim_token=uuid.uuid4(), attempts=1)
    make_event(available_at=now + timedelta(hours=1), attempts=2, last_error="throttled")
    # Dead within the hour, and long ago.
    make_event(OutboxStatus.DEAD, updated_at=minutes(10), available_at=minutes(11))
    make_event(OutboxStatus.DEAD, updated_at=minutes(120), available_at=minutes(121))
    # Three dispatched within the last five minutes, two before.
    for age in (0.5, 2, 4.5, 6, 30):
        make_event(OutboxStatus.DISPATCHED, dispatched_at=minutes(age), available_at=minutes(40))
    make_event(OutboxStatus.CANCELLED, available_at=minutes(50))
    return now


@pytest.fixture(autouse=True)
def _no_cached_health():
    views.clear_cache()
    yield
    views.clear_cache()


def all_statuses(**counts) -> dict[str, int]:
    return {**dict.fromkeys(OutboxStatus.values, 0), **counts}


# --------------------------------------------------------------------------- health figures


def test_health_figures(crafted):
    with CaptureQueriesContext(connection) as queries:
        health = outbox_health(lag_threshold_seconds=900)
    assert len(queries) == 2  # the lag from the due index; the rest in one aggregate
    assert health.counts == all_statuses(pending=5, dead=2, dispatched=5, cancelled=1)
    assert 600 <= health.lag_seconds < 610
    assert health.oldest_due_at <= crafted - timedelta(minutes=10)
    assert health.dead_last_hour == 1
    assert health.dispatched_recently == 3
    assert health.dispatched_per_minute == pytest.approx(0.6)
    assert health.healthy
    assert not outbox_health(lag_threshold_seconds=599).healthy

    data = health.as_dict()
    assert data["healthy"] is True
    assert data["counts"] == health.counts
    assert data["dead_last_hour"] == 1 and data["dispatched_last_5_minutes"] == 3
    assert data["dispatched_per_minute"] == 0.6
    assert data["lag_threshold_seconds"] == 900
    assert datetime.fromisoformat(data["oldest_due_at"]) == health.oldest_due_at
    json.dumps(data)  # JSON-ready as it is


def test_threshold_defaults_to_the_setting(crafted, settings):
    assert outbox_health().lag_threshold_seconds == 300
    assert not outbox_health().healthy
    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": 3600}
    assert outbox_health().healthy


def test_nothing_due_is_no_lag(db):
    make_event(available_at=timezone.now() + timedelta(minutes=5), claim_token=uuid.uuid4())
    make_event(OutboxStatus.DEAD, available_at=timezone.now() - timedelta(days=2))
    health = outbox_health(lag_threshold_seconds=1)
    assert (health.lag_seconds, health.oldest_due_at, health.healthy) == (0.0, None, True)
    assert health.counts == all_statuses(pending=1, dead=1)
    assert (health.dead_last_hour, health.dispatched_recently) == (1, 0)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (605, "10 min 5 s"),
        (7260, "2 h 1 min"),
        (2 * 86400 + 3600, "2 d 1 h"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


# --------------------------------------------------------------------------- outbox_status


def test_status_command_below_the_threshold(crafted):
    out = io.StringIO()
    call_command("outbox_status", "--lag-threshold", "900", stdout=out)
    text = out.getvalue()
    assert text.startswith("Outbox OK at ")
    assert "lag                   10 min" in text
    assert "(threshold 15 min)" in text
    assert "  pending               5\n" in text
    assert "  dead                  2\n" in text
    assert "dead in the last hour 1\n" in text
    assert "dispatched per minute 0.6 (last 5 minutes)" in text


def test_status_command_above_the_threshold_exits_2(crafted):
    out = io.StringIO()
    with pytest.raises(CommandError, match="exceeds the threshold of 5 min") as raised:
        call_command("outbox_status", stdout=out)  # default: LAG_THRESHOLD_SECONDS, 300
    assert raised.value.returncode == 2
    assert out.getvalue().startswith("Outbox LAGGING at ")


def test_status_command_exit_status_from_the_command_line(crafted, monkeypatch, capsys):
    # run_from_argv is what manage.py runs; it closes the connections afterwards, which would
    # end the test's transaction.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    with pytest.raises(SystemExit) as exited:
        OutboxStatusCommand().run_from_argv(["manage.py", "outbox_status", "--json"])
    assert exited.value.code == 2
    assert "exceeds the threshold" in capsys.readouterr().err

    OutboxStatusCommand().run_from_argv(["manage.py", "outbox_status", "--lag-threshold=900"])


def test_status_command_json(crafted):
    out = io.StringIO()
    call_command("outbox_status", "--json", "--lag-threshold", "1200", stdout=out)
    data = json.loads(out.getvalue())
    assert data["healthy"] is True
    assert 600 <= data["lag_seconds"] < 610
    assert data["lag_threshold_seconds"] == 1200
    assert data["counts"] == all_statuses(pending=5, dead=2, dispatched=5, cancelled=1)
    assert (data["dead_last_hour"], data["dispatched_last_5_minutes"]) == (1, 3)

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("outbox_status", "--json", "--lag-threshold", "60", stdout=out)
    assert json.loads(out.getvalue())["healthy"] is False


def test_status_command_rejects_a_negative_threshold(db):
    with pytest.raises(CommandError, match="--lag-threshold must be >= 0"):
        call_command("outbox_status", "--lag-threshold", "-1")


# --------------------------------------------------------------------------- health view


@pytest.mark.urls(__name__)
def test_health_view_200_then_503(admin_client, crafted, settings):
    """Staff see the figures (tests/test_outbox_health_view.py: who sees what)."""
    client = admin_client
    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": 900}
    url = reverse("outbox:health")
    assert url == "/outbox/health/"
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert data["healthy"] is True and data["counts"]["pending"] == 5
    # Figures only: nothing about any event.
    assert "booking.confirmed" not in response.content.decode()

    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": 300}
    response = client.get(url)
    assert response.status_code == 503
    assert response.json()["healthy"] is False
    assert client.head(url).status_code == 503
    assert client.post(url).status_code == 405


@pytest.mark.urls(__name__)
def test_health_view_of_an_empty_outbox(admin_client):
    response = admin_client.get(reverse("outbox:health"))
    assert response.status_code == 200
    assert response.json()["lag_seconds"] == 0


@pytest.mark.urls(__name__)
def test_health_view_reuses_its_figures_for_a_few_seconds(client, db, monkeypatch, settings):
    token = "t" * 32
    settings.OUTBOX = {"HEALTH_TOKEN": token}
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"  # no session: queries are ours
    clock = [1000.0]
    monkeypatch.setattr(views, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    url = reverse("outbox:health")
    first = client.get(url).json()
    make_event(available_at=timezone.now() - timedelta(hours=1))
    clock[0] += views.CACHE_SECONDS - 0.1
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).json() == first  # the same answer, no query
    assert len(queries) == 0
    clock[0] += 0.1
    response = client.get(url)
    assert response.status_code == 503
    assert response.json()["counts"]["pending"] == 1


# --------------------------------------------------------------------------- admin


def test_admin_list_shows_the_figures(admin_client, crafted):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    panel = response.context["outbox_health"]
    assert panel["healthy"] is False  # ten minutes > the default five
    figures = {figure["key"]: figure for figure in panel["figures"]}
    assert figures["lag"]["value"] == "10 min" and figures["lag"]["alert"]
    assert (figures["pending"]["value"], figures["dead"]["value"]) == (5, 2)
    assert figures["dead_last_hour"]["value"] == 1
    assert figures["dispatched_per_minute"]["value"] == "0.6"
    body = response.content.decode()
    assert '<section class="outbox-health" data-healthy="false"' in body
    assert '<li data-figure="lag" class="alert">' in body
    assert '<a class="value" href="?status__exact=dead">2</a>' in body
    assert "Lagging: the oldest due event has waited longer than the threshold of 5 min." in body
    # Above the results.
    assert body.index('class="outbox-health"') < body.index('id="changelist"')


def test_admin_list_of_a_healthy_outbox(admin_client, settings, crafted):
    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": 3600}
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert 'data-healthy="true"' in body
    assert '<li data-figure="lag">' in body
    assert "Healthy: the oldest due event waits less than the threshold of 1 h." in body


# --------------------------------------------------------------------------- log records


@pytest.fixture
def relay_setup(scripted, templates, outbox, customer):
    """The outbox rules, sent through the scripted provider."""
    return customer


def event_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "outbox" and r.msg.startswith("outbox.event")]


def fields_of(record: logging.LogRecord) -> dict:
    return {name: getattr(record, name) for name in EVENT_FIELDS}


def test_claim_and_dispatch_are_logged_with_their_fields(relay_setup, caplog):
    caplog.set_level(logging.DEBUG, logger="outbox")
    event = emit("booking.confirmed", to=relay_setup, context={"ref": "BK1"})
    assert drain().dispatched == 1
    claimed, dispatched = event_records(caplog)
    assert (claimed.levelno, dispatched.levelno) == (logging.DEBUG, logging.INFO)
    token = claimed.claim_token
    uuid.UUID(token)
    base = {"event_id": str(event.pk), "event_type": "booking.confirmed", "attempt": 1}
    assert fields_of(claimed) == {
        **base,
        "outcome": "claimed",
        "provider": "",
        "claim_token": token,
        "error": "",
        "retry_at": "",
    }
    assert fields_of(dispatched) == {
        **base,
        "outcome": "dispatched",
        "provider": "scripted",
        "claim_token": token,
        "error": "",
        "retry_at": "",
    }
    assert dispatched.getMessage() == (
        f"outbox.event dispatched: booking.confirmed {event.pk}, attempt 1"
    )


def test_retried_and_dead_are_logged_with_the_error(relay_setup, caplog, settings):
    caplog.set_level(logging.INFO, logger="outbox")
    ScriptedProvider.fail["email"] = ProviderError("throttled", retryable=True)
    retried = emit("booking.confirmed", to=relay_setup, context={"ref": "BK1"})
    settings.OUTBOX["RULES"] = {**RULES, "booking.unknown": {"template_key": "no_such_template"}}
    dead = emit("booking.unknown", to=relay_setup)
    summary = drain()
    assert (summary.retried, summary.dead) == (1, 1)
    records = {r.outcome: r for r in event_records(caplog)}
    assert set(records) == {"retried", "dead"}  # nothing for claims at INFO

    record = records["retried"]
    assert record.levelno == logging.WARNING
    assert (record.event_id, record.attempt, record.provider) == (str(retried.pk), 1, "scripted")
    assert "throttled (retryable)" in record.error
    row = OutboxEvent.objects.get(pk=retried.pk)
    assert datetime.fromisoformat(record.retry_at) == row.available_at
    assert record.getMessage().endswith(f"attempt 1: {record.error}")

    record = records["dead"]
    assert (record.event_id, record.event_type, record.provider) == (
        str(dead.pk),
        "booking.unknown",
        "",
    )
    assert record.error.startswith("no_such_template (routed): No active message template")
    assert record.retry_at == ""


def test_lost_leases_are_logged(relay_setup, caplog):
    caplog.set_level(logging.INFO, logger="outbox")
    events = [emit("booking.confirmed", to=relay_setup, context={"ref": f"R{n}"}) for n in range(2)]
    stale_token, stale_events = claim(10)
    OutboxEvent.objects.update(available_at=timezone.now() - timedelta(seconds=1))
    assert drain().dispatched == 2  # another relay took over after the lease
    caplog.clear()

    assert process_batch(stale_token, stale_events).lost_lease == 2
    assert finalize(stale_token, [EventOutcome(stale_events[0], errors=["late"])]).lost_lease == 1
    records = event_records(caplog)
    assert [(r.outcome, r.levelno) for r in records] == [("lost_lease", logging.WARNING)] * 3
    assert {r.event_id for r in records} == {str(e.pk) for e in events}
    assert {r.claim_token for r in records} == {str(stale_token)}
    assert records[-1].error == "late"


def test_a_partly_lost_batch_logs_each_event_once(relay_setup, caplog):
    caplog.set_level(logging.INFO, logger="outbox")
    kept, taken = (emit("booking.confirmed", to=relay_setup, context={"ref": r}) for r in "AB")
    token, events = claim(10)
    OutboxEvent.objects.filter(pk=taken.pk).update(claim_token=uuid.uuid4())  # another relay's
    summary = finalize(token, [EventOutcome(event) for event in events])
    assert (summary.dispatched, summary.lost_lease) == (1, 1)
    outcomes = {r.event_id: r.outcome for r in event_records(caplog)}
    assert outcomes == {str(kept.pk): "dispatched", str(taken.pk): "lost_lease"}


def test_no_per_event_work_for_dispatches_without_info_logging(relay_setup, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="outbox")
    calls = []
    for module in ("outbox.relay", "outbox.finalize"):  # where records are written
        monkeypatch.setattr(
            f"{module}.log_event", lambda *a, **k: calls.append(a) or log_event(*a, **k)
        )
    for n in range(3):
        emit("booking.confirmed", to=relay_setup, context={"ref": f"R{n}"})
    assert drain().dispatched == 3
    assert calls == []
    assert event_records(caplog) == []


# --------------------------------------------------------------------------- JSON formatter


def test_json_formatter_writes_one_parseable_line_per_record(relay_setup):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("outbox")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        ScriptedProvider.fail["email"] = ProviderError("line one\nline two", retryable=False)
        event = emit("booking.confirmed", to=relay_setup, context={"ref": "BK1"})
        assert drain().dead == 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    [line] = stream.getvalue().splitlines()
    data = json.loads(line)
    assert EVENT_FIELDS | {"time", "level", "logger", "message"} <= set(data)
    assert (data["level"], data["logger"], data["outcome"]) == ("WARNING", "outbox", "dead")
    assert (data["event_id"], data["attempt"], data["provider"]) == (str(event.pk), 1, "scripted")
    assert "line one\nline two" in data["error"]
    assert data["message"].startswith(f"outbox.event dead: booking.confirmed {event.pk}")
    assert datetime.fromisoformat(data["time"]).utcoffset() == timedelta(0)


def test_json_formatter_handles_any_record():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "app", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    record.when = timezone.now()  # not JSON: written as text
    record.count = 3
    data = json.loads(formatter.format(record))
    assert data["message"] == "failed x"
    assert data["count"] == 3 and isinstance(data["when"], str)
    assert data["exception"].startswith("Traceback") and "ValueError: boom" in data["exception"]
    assert not {"msg", "args", "levelno", "exc_info", "pathname"} & set(data)


# --------------------------------------------------------------------------- setting


@pytest.mark.parametrize("value", [0, -5, "300", None, True])
def test_bad_lag_threshold_is_e008(settings, value):
    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": value}
    assert [message.id for message in check_outbox_settings()] == ["outbox.E008"]


def test_good_lag_threshold_passes(settings):
    settings.OUTBOX = {"LAG_THRESHOLD_SECONDS": 45.5}
    assert check_outbox_settings() == []


def test_an_event_held_back_by_its_ordering_key_is_not_lag(db):
    """The later event of a key waits for the earlier one's retry: working as designed."""
    now = timezone.now()
    make_event(ordering_key="booking:1", ordering_seq=1, available_at=now + timedelta(hours=1))
    make_event(ordering_key="booking:1", ordering_seq=2, available_at=now - timedelta(hours=1))
    health = outbox_health(60)
    assert health.oldest_due_at is None and health.healthy
    make_event(available_at=now - timedelta(minutes=10))  # no key: really waiting
    assert outbox_health(60).lag_seconds >= 600
