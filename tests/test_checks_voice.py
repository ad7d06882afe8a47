"""System checks of the voice channel and the twilio provider: communication.E020-E022, W001,
W005 and outbox.W003 for a voice rule, by id, and through ``manage.py check``."""

from __future__ import annotations

import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_communication.checks import check_stored_secrets
from django_communication.models import MessageTemplate
from django_communication.twilio_checks import check_twilio
from outbox.database_checks import check_rule_templates
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN

CREDENTIALS = {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN}


def ids(messages) -> list[str]:
    return [message.id for message in messages]


@pytest.fixture
def no_env_credentials(monkeypatch):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)


@pytest.fixture
def twilio_voice(comm_config, settings, no_env_credentials):
    comm_config.voice_provider = "twilio"
    comm_config.save()
    settings.COMMUNICATION = {"SITE_URL": "https://shop.example.com", "TWILIO": CREDENTIALS}
    return comm_config


def test_a_configured_twilio_passes(twilio_voice):
    assert check_twilio() == []


@pytest.mark.parametrize(
    "value",
    [
        ["AC1"],
        {"ACCOUNT": "AC1"},
        {"AUTH_TOKEN": 123},
        {"API_URL": "api.twilio.com"},
    ],
)
def test_malformed_twilio_settings(settings, db, value):
    settings.COMMUNICATION = {"TWILIO": value}
    assert ids(check_twilio()) == ["communication.E020"]


def test_twilio_without_credentials(twilio_voice, settings):
    settings.COMMUNICATION = {"SITE_URL": "https://shop.example.com"}
    [error] = check_twilio()
    assert error.id == "communication.E021"
    assert "voice_provider" in error.msg and "account SID" in error.msg
    with pytest.raises(SystemCheckError, match=r"communication\.E021"):
        call_command("check")


def test_credentials_from_the_singleton_or_the_environment_pass(
    twilio_voice, settings, monkeypatch
):
    settings.COMMUNICATION = {"SITE_URL": "https://shop.example.com"}
    twilio_voice.twilio_account_sid, twilio_voice.twilio_auth_token = ACCOUNT_SID, AUTH_TOKEN
    twilio_voice.save()
    assert check_twilio() == []
    twilio_voice.twilio_account_sid = twilio_voice.twilio_auth_token = ""
    twilio_voice.save()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    assert check_twilio() == []


def test_twilio_named_only_as_a_fallback_is_in_use(comm_config, settings, no_env_credentials):
    settings.COMMUNICATION = {"FALLBACK": {"sms": ["twilio"]}, "SITE_URL": "https://x.example"}
    [error] = check_twilio()
    assert error.id == "communication.E021" and "FALLBACK['sms']" in error.msg


def test_twilio_not_in_use_needs_nothing(comm_config, settings, no_env_credentials):
    settings.COMMUNICATION = {}
    assert check_twilio() == []


def test_a_missing_twilio_package_names_the_extra(twilio_voice, monkeypatch):
    for name in [m for m in sys.modules if m == "twilio" or m.startswith("twilio.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "twilio", None)
    [error] = check_twilio()
    assert error.id == "communication.E022"
    assert error.hint == 'pip install "django-communication[twilio]"'


def test_twilio_without_site_url_warns(twilio_voice, settings):
    settings.COMMUNICATION = {"TWILIO": CREDENTIALS}
    assert ids(check_twilio()) == ["communication.W005"]


def test_a_stored_twilio_auth_token_warns_in_production(comm_config, settings):
    settings.DEBUG = False
    assert check_stored_secrets() == []
    comm_config.twilio_auth_token = AUTH_TOKEN
    comm_config.save()
    assert ids(check_stored_secrets()) == ["communication.W001"]


# ----------------------------------------------------------------- outbox.W003 for voice


@pytest.fixture
def reminder(db):
    return MessageTemplate.objects.create(
        key="reminder", name="Reminder", message_type="reminder", sms_body="Tomorrow at 10."
    )


def test_a_voice_rule_whose_template_cannot_call(reminder, settings):
    settings.OUTBOX = {
        "RULES": {"booking.reminder": {"template_key": "reminder", "channel": "voice"}}
    }
    [warning] = check_rule_templates(databases=["default"])
    assert warning.id == "outbox.W003"
    assert "sends on voice with template 'reminder'" in warning.msg
    out = StringIO()
    call_command("check", "--database", "default", stderr=out, stdout=out)
    assert "outbox.W003" in out.getvalue()

    reminder.voice_body = "Your booking is tomorrow at 10."
    reminder.save()
    assert check_rule_templates(databases=["default"]) == []


def test_a_rule_routed_to_voice_counts_too(reminder, settings):
    settings.OUTBOX = {"RULES": {"booking.reminder": {"template_key": "reminder"}}}
    assert check_rule_templates(databases=["default"]) == []  # a reminder is an SMS by default
    settings.COMMUNICATION = {"ROUTING": {"reminder": "voice"}}
    assert ids(check_rule_templates(databases=["default"])) == ["outbox.W003"]
