"""The twilio provider: the official twilio client over HTTP to a Twilio stand-in on loopback
(tests/twilio_server.py). SMS through the Messages API, calls through the Calls API with TwiML,
status callbacks on both, errors classified."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

from django_communication import send
from django_communication.exceptions import ConfigurationError, ProviderError
from django_communication.models import Message
from tests.twilio_server import ACCOUNT_SID, SITE_URL

STATUS_URL = f"{SITE_URL}/communication/twilio/status/"


def test_an_sms_goes_through_the_messages_api(twilio_settings, customer):
    message = send(to=customer, channel="sms", body_text="Your table is ready.")
    [request] = twilio_settings.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.field("To") == "+447911123456"
    assert request.field("From") == "+15005550006"
    assert request.field("Body") == "Your table is ready."
    assert request.field("StatusCallback") == STATUS_URL
    message.refresh_from_db()
    assert (message.status, message.provider) == ("sent", "twilio")
    assert message.provider_message_id.startswith("SM")


def test_a_call_says_the_text_and_gathers_one_key(twilio_settings, customer, reminder_call):
    message = send(
        to=customer, template_key="reminder-call", context={"ref": "<Dial>John"}, channel="voice"
    )
    [request] = twilio_settings.calls()
    assert request.field("To") == "+447911123456"
    assert request.field("From") == "+15005550006"
    assert request.field("StatusCallback") == STATUS_URL
    assert request.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    twiml = ET.fromstring(request.field("Twiml"))
    gather = twiml.find("Gather")
    assert gather.get("numDigits") == "1"
    assert gather.get("method") == "POST"
    assert gather.get("action") == f"{SITE_URL}/communication/twilio/keypad/{message.pk}/"
    # The context is text to say: it cannot add a TwiML verb.
    assert gather.find("Say").text == (
        "Booking <Dial>John is tomorrow. Press 1 to confirm, 2 to cancel."
    )
    assert twiml.find(".//Dial") is None
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id.startswith("CA")


def test_a_call_without_choices_only_says_the_text(twilio_settings, customer):
    send(to=customer, channel="voice", body_text="The shop closes early today.")
    twiml = ET.fromstring(twilio_settings.calls()[0].field("Twiml"))
    assert [child.tag for child in twiml] == ["Say"]
    assert twiml.find("Say").text == "The shop closes early today."


def test_without_site_url_no_status_callback_and_no_keypad_call(
    twilio_settings, customer, reminder_call, settings
):
    settings.COMMUNICATION = {k: v for k, v in settings.COMMUNICATION.items() if k != "SITE_URL"}
    send(to=customer, channel="sms", body_text="Hi")
    assert twilio_settings.texts()[0].field("StatusCallback") is None
    with pytest.raises(ProviderError, match="SITE_URL") as caught:
        send(to=customer, template_key="reminder-call", context={"ref": "J"}, channel="voice")
    assert caught.value.retryable
    assert twilio_settings.calls() == []


def test_an_invalid_number_is_a_permanent_failure(twilio_settings, customer):
    twilio_settings.fail_with(400, 21211, "The 'To' number is not a valid phone number.")
    with pytest.raises(ProviderError) as caught:
        send(to=customer, channel="sms", body_text="Hi")
    error = caught.value
    assert not error.retryable and error.permanent
    assert "Twilio error 21211 (HTTP 400)" in error.description
    message = Message.objects.get()
    assert message.status == "failed"
    assert "21211" in message.error


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_throttling_and_server_errors_are_retryable(twilio_settings, customer, status, code):
    twilio_settings.fail_with(status, code, "Too many requests")
    with pytest.raises(ProviderError) as caught:
        send(to=customer, channel="voice", body_text="Hi")
    assert caught.value.retryable
    assert f"HTTP {status}" in caught.value.description


def test_wrong_credentials_are_retryable_and_named(twilio_settings, customer, settings):
    settings.COMMUNICATION["TWILIO"] = {**settings.COMMUNICATION["TWILIO"], "AUTH_TOKEN": "wrong"}
    with pytest.raises(ProviderError, match="20003") as caught:
        send(to=customer, channel="sms", body_text="Hi")
    assert caught.value.retryable  # an administrator fixes it, then a retry works


def test_an_unreachable_api_is_retryable(twilio_settings, customer, settings):
    from tests.servers import free_port

    twilio = {**settings.COMMUNICATION["TWILIO"], "API_URL": f"http://127.0.0.1:{free_port()}"}
    settings.COMMUNICATION = {**settings.COMMUNICATION, "TWILIO": twilio}
    with pytest.raises(ProviderError, match="ConnectionError") as caught:
        send(to=customer, channel="sms", body_text="Hi")
    assert caught.value.retryable


def test_credentials_from_the_settings_singleton(twilio_settings, comm_config, customer, settings):
    settings.COMMUNICATION = {
        "TWILIO": {"API_URL": twilio_settings.url},
    }
    comm_config.twilio_account_sid = ACCOUNT_SID
    comm_config.twilio_auth_token = twilio_settings.auth_token
    comm_config.save()
    assert send(to=customer, channel="sms", body_text="Hi").status == "sent"


def test_no_credentials_is_a_configuration_error(twilio_settings, customer, settings, monkeypatch):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    settings.COMMUNICATION = {"TWILIO": {"API_URL": twilio_settings.url}}
    with pytest.raises(ConfigurationError, match="twilio provider has no credentials"):
        send(to=customer, channel="sms", body_text="Hi")
    assert twilio_settings.requests == []


def test_a_missing_twilio_package_names_the_extra(twilio_settings, customer, monkeypatch):
    for name in [m for m in sys.modules if m == "twilio" or m.startswith("twilio.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "twilio", None)  # import twilio raises ImportError
    with pytest.raises(ConfigurationError, match=r"django-communication\[twilio\]"):
        send(to=customer, channel="sms", body_text="Hi")
