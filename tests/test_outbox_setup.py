"""What a new user trips over: the broker, the schedule, rules without templates, unhandled
event types, missing AWS credentials, and what drain_outbox reports."""

from __future__ import annotations

import json
import sys
from io import StringIO

import boto3
import pytest
from django.core import checks
from django.core.management import call_command
from django.db import transaction
from django.urls import include, path, reverse
from django.utils import timezone
from django_q.models import Schedule

from django_communication import send
from django_communication.exceptions import (
    ConfigurationError,
    ProviderConfigurationError,
    ProviderError,
)
from django_communication.models import (
    CommunicationSettings,
    Message,
    MessageStatus,
)
from outbox import emit, views, wakeup
from outbox.checks import check_broker
from outbox.database_checks import check_drain_schedule, check_rule_templates
from outbox.health import outbox_health
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.providers import TEST_PROVIDERS, ScriptedProvider
from tests.servers import FAKE_KEY_ID, FAKE_SECRET

urlpatterns = [path("outbox/", include("outbox.urls"))]


def ids(messages) -> list[str]:
    return [message.id for message in messages]


# --------------------------------------------------------------------------- the broker


def test_redis_broker_without_the_redis_package_fails_the_check(monkeypatch, settings):
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError
    settings.Q_CLUSTER = {"name": "site"}  # no broker named: django-q2 picks Redis
    [error] = check_broker(settings.Q_CLUSTER)
    assert error.id == "outbox.E011" and "'redis' package" in error.msg
    assert "'orm': 'default'" in error.hint
    assert "outbox.E011" in ids(checks.run_checks())
    # The ORM broker needs nothing more.
    settings.Q_CLUSTER = {"name": "site", "orm": "default"}
    assert "outbox.E011" not in ids(checks.run_checks())


@pytest.mark.parametrize(
    ("q_cluster", "found"),
    [
        ({"name": "s", "orm": "default"}, []),
        ({"name": "s"}, []),  # Redis, and the redis package is installed here
        ({"name": "s", "orm": "elsewhere"}, ["outbox.E011"]),
        ({"name": "s", "broker_class": "no.such.Broker"}, ["outbox.E011"]),
        ({"name": "s", "broker_class": "django_q.brokers.orm.ORM"}, []),
        ({"name": "s", "mongo": {"host": "127.0.0.1"}}, ["outbox.E011"]),  # no pymongo
        ("orm", ["outbox.E011"]),
    ],
)
def test_broker_check(q_cluster, found):
    assert ids(check_broker(q_cluster)) == found


# --------------------------------------------------------------------------- the schedule


def test_missing_schedule_is_flagged_by_check_database(db, settings):
    settings.OUTBOX = {}
    assert "outbox.W002" not in ids(checks.run_checks())  # not without --database
    assert ids(check_drain_schedule(databases=["default"])) == ["outbox.W002"]
    err = StringIO()
    call_command("check", "--database", "default", stderr=err, stdout=StringIO())
    assert "outbox.W002" in err.getvalue() and "outbox_schedule" in err.getvalue()

    call_command("outbox_schedule", stdout=StringIO())
    assert check_drain_schedule(databases=["default"]) == []
    # Without wake-ups the outbox does not rely on django-q2: drain_outbox --loop.
    Schedule.objects.all().delete()
    settings.OUTBOX = {"WAKE_ON_COMMIT": False}
    assert check_drain_schedule(databases=["default"]) == []


def test_a_failed_wake_up_says_truthfully_what_happens(db, settings, monkeypatch, caplog):
    settings.OUTBOX = {"WAKE_INTERVAL_SECONDS": 0}
    monkeypatch.setattr(wakeup, "_last_enqueue", 0.0)
    monkeypatch.setattr(wakeup, "_logged_errors", set())

    def no_redis(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'redis'")

    monkeypatch.setattr("django_q.tasks.async_task", no_redis)
    wakeup.enqueue_drain()
    wakeup.enqueue_drain()
    first, second = [r for r in caplog.records if r.name == "outbox"]
    for record in (first, second):
        text = record.getMessage()
        assert "No module named 'redis'" in text
        assert "pick it up" not in text
        assert "no schedule drains the outbox either" in text and "outbox_schedule" in text
    assert first.exc_info and not second.exc_info  # the traceback once, not on every commit

    call_command("outbox_schedule", stdout=StringIO())
    caplog.clear()
    wakeup.enqueue_drain()
    assert "the next run of the drain schedule" in caplog.records[0].getMessage()


# --------------------------------------------------------------------------- rules and templates


def test_check_database_flags_a_rule_whose_template_is_missing_for_its_channel(
    make_template, db, settings
):
    settings.OUTBOX = {
        "RULES": {
            "booking.confirmed": {"template_key": "confirmation"},  # transactional → email
            "booking.cancelled": [
                {"template_key": "cancelled", "channel": "email"},
                {"template_key": "cancelled", "channel": "sms"},
            ],
            "booking.reminder": {"template_key": "reminder", "message_type": "reminder"},
            "booking.typo": {"template_key": "no_such_key", "channel": "email"},
        }
    }
    make_template("confirmation", name="C", email_subject="S", email_body_text="T")
    make_template("cancelled", name="X", email_subject="S", email_body_html="H")
    make_template("reminder", name="R", email_subject="S", email_body_text="T")
    make_template(
        "no_such_key", name="Off", email_subject="S", email_body_text="T", is_active=False
    )
    found = check_rule_templates(databases=["default"])
    assert ids(found) == ["outbox.W003"] * 3
    messages = sorted(warning.msg for warning in found)
    assert messages[0].startswith(
        "OUTBOX['RULES']['booking.cancelled'][1] sends on sms with template 'cancelled', which "
        "has no sms content"
    )
    assert messages[1].startswith(
        "OUTBOX['RULES']['booking.reminder'] sends on sms with template 'reminder'"
    )
    assert messages[2].startswith(
        "OUTBOX['RULES']['booking.typo'] names template 'no_such_key', and no active template "
        "has that key"
    )
    assert "(channel email)" in messages[2]

    err = StringIO()
    call_command("check", "--database", "default", stderr=err, stdout=StringIO())
    assert err.getvalue().count("outbox.W003") == 3
    assert check_rule_templates() == []  # without a database, nothing is read


# --------------------------------------------------------------------------- missing credentials


@pytest.fixture
def ses_without_credentials(make_template, comm_config, moto_server, monkeypatch, settings):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    comm_config.email_provider = "ses"
    comm_config.save()
    make_template("confirmation", name="C", email_subject="Booked", email_body_text="Booked")
    settings.OUTBOX = {
        "RULES": {"booking.confirmed": {"template_key": "confirmation", "channel": "email"}},
        "WAKE_ON_COMMIT": False,
    }
    views.clear_cache()
    yield moto_server
    views.clear_cache()


@pytest.mark.urls(__name__)
def test_missing_aws_credentials_are_a_configuration_problem_shown_while_events_wait(
    ses_without_credentials, customer, admin_client
):
    with pytest.raises(ProviderConfigurationError) as caught:
        send(to=customer, template_key="confirmation")
    text = str(caught.value)
    assert "ses_access_key_id" in text and "AWS_ACCESS_KEY_ID" in text and "IAM role" in text
    assert caught.value.retryable and isinstance(caught.value, ConfigurationError)
    assert caught.value.message.status == MessageStatus.FAILED

    event = emit("booking.confirmed", to=customer)
    summary = drain()
    assert (summary.retried, summary.dead, summary.sent) == (1, 0, 0)
    row = OutboxEvent.objects.get(pk=event.pk)
    assert row.status == OutboxStatus.PENDING
    assert "configuration problem: ses: AWS found no usable credentials" in row.last_error
    assert ses_without_credentials.requests == []  # nothing reached the (loopback) AWS

    health = outbox_health()
    assert health.configuration_problems == 1 and "ses_access_key_id" in health.configuration_error
    out = StringIO()
    call_command("outbox_status", stdout=out)
    assert "CONFIGURATION PROBLEM: 1 pending event(s)" in out.getvalue()
    assert "ses_secret_access_key" in out.getvalue()
    out = StringIO()
    call_command("outbox_status", "--json", stdout=out)
    assert json.loads(out.getvalue())["configuration_problems"] == 1
    response = admin_client.get(reverse("outbox:health"))  # the figures are for staff
    assert response.json()["configuration_problems"] == 1

    # Fixed (here: keys in the settings singleton), the next attempt sends and the figure clears.
    singleton = CommunicationSettings.get_solo()
    singleton.ses_access_key_id, singleton.ses_secret_access_key = FAKE_KEY_ID, FAKE_SECRET
    singleton.save()
    boto3.client(
        "sesv2",
        region_name=singleton.ses_region,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    ).create_email_identity(EmailIdentity=singleton.email_from_address)
    OutboxEvent.objects.update(available_at=timezone.now())  # due again, without the backoff
    assert drain().dispatched == 1
    assert outbox_health().configuration_problems == 0


# --------------------------------------------------------------------------- the drain summary


def test_drain_counts_messages_and_not_those_an_earlier_attempt_sent(
    make_template, comm_config, settings, customer
):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    comm_config.email_provider = comm_config.sms_provider = "scripted"
    comm_config.save()
    ScriptedProvider.reset()
    make_template("cancelled", name="X", email_subject="S", email_body_text="T", sms_body="T")
    settings.OUTBOX = {
        "RULES": {
            "booking.cancelled": [
                {"template_key": "cancelled", "channel": "email"},
                {"template_key": "cancelled", "channel": "sms"},
            ]
        },
        "WAKE_ON_COMMIT": False,
    }
    with transaction.atomic():
        emit("booking.cancelled", to=customer)
        emit("booking.cancelled", to=customer)
    ScriptedProvider.fail["sms"] = ProviderError("down", retryable=True)
    out = StringIO()
    call_command("drain_outbox", stdout=out)
    assert out.getvalue() == (
        "Outbox drained: events dispatched 0, retried 2, dead 0 (2 of them partly sent); "
        "messages sent 2.\n"
    )
    ScriptedProvider.fail.clear()
    OutboxEvent.objects.update(available_at=timezone.now())  # due again, without the backoff
    out = StringIO()
    call_command("drain_outbox", stdout=out)
    # The retry sends the two SMS; the two emails sent before are not counted again.
    assert out.getvalue() == (
        "Outbox drained: events dispatched 2, retried 0, dead 0; messages sent 2.\n"
    )
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 4
    ScriptedProvider.reset()
