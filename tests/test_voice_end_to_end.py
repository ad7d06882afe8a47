"""Voice and Twilio end to end: an outbox rule that calls, through the relay, the Twilio
stand-in and the signed keypad webhook back to the application's receiver; and SMS fallback
from SNS (moto, stopped) to Twilio, exactly once."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends
from twilio.request_validator import RequestValidator

from django_communication import send
from django_communication.models import Message
from django_communication.signals import reply_received
from outbox import emit
from outbox.models import OutboxEvent
from outbox.relay import drain
from tests.testapp.models import Booking
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, SITE_URL


@pytest.fixture
def confirmations():
    """The application's receiver from the README: a keypad "confirm" confirms the booking."""
    confirmed: list[tuple[Booking, str]] = []

    def on_reply(sender, message, reply, digit, label, **kwargs):
        confirmed.append((message.related_object, label))

    reply_received.connect(on_reply)
    yield confirmed
    reply_received.disconnect(on_reply)


def test_an_outbox_rule_calls_and_the_keypad_reply_reaches_the_application(
    client, twilio_settings, settings, customer, booking, reminder_call, confirmations
):
    settings.OUTBOX = {
        "RULES": {"booking.reminder": {"template_key": "reminder-call", "channel": "voice"}},
        "WAKE_ON_COMMIT": False,
    }
    emit("booking.reminder", to=customer, context={"ref": booking.ref}, related_object=booking)
    assert twilio_settings.requests == []  # nothing before the relay

    assert drain().dispatched == 1
    assert drain().processed == 0  # once
    [request] = twilio_settings.calls()
    assert request.field("To") == "+447911123456"
    call = Message.objects.get()
    assert (call.channel, call.status, call.related_object) == ("voice", "sent", booking)
    assert call.provider_message_id.startswith("CA")
    assert OutboxEvent.objects.get().status == "dispatched"

    # Twilio posts the key pressed to the action URL it was given in the TwiML.
    action = ET.fromstring(request.field("Twiml")).find("Gather").get("action")
    params = {"AccountSid": ACCOUNT_SID, "CallSid": call.provider_message_id, "Digits": "1"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(action, params)
    response = client.post(
        action.removeprefix(SITE_URL),
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 200
    assert confirmations == [(booking, "confirm")]
    reply = call.replies.get()
    assert (reply.direction, reply.body_text, reply.related_object) == (
        "inbound",
        "confirm",
        booking,
    )


def test_sns_down_twilio_sends_the_sms_exactly_once(
    twilio_settings, moto_server, comm_config, settings, customer
):
    comm_config.sms_provider = "sns"
    comm_config.sns_region = "us-east-1"
    comm_config.save()
    settings.COMMUNICATION = {**settings.COMMUNICATION, "FALLBACK": {"sms": ["twilio"]}}
    moto_server.stop()

    message = send(to=customer, channel="sms", body_text="Your table is ready.")
    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.provider) == ("sent", "twilio")
    assert row.provider_message_id.startswith("SM")
    assert row.error.startswith("sns: EndpointConnectionError")
    assert row.error.endswith("(retryable); sent by twilio")
    [text] = twilio_settings.texts()
    assert (text.field("To"), text.field("Body")) == ("+447911123456", "Your table is ready.")

    # A keyed send, then its repeat: one text. SNS back: the next one goes by SNS.
    keyed = send(to=customer, channel="sms", body_text="Keyed", idempotency_key="k")
    assert send(to=customer, channel="sms", body_text="Keyed", idempotency_key="k").pk == keyed.pk
    moto_server.start()
    again = send(to=customer, channel="sms", body_text="Next")
    assert again.provider == "sns"
    assert [t.field("Body") for t in twilio_settings.texts()] == ["Your table is ready.", "Keyed"]
    assert len(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages) == 1


def test_a_call_falls_back_and_is_paced_like_any_message(twilio_settings, settings, customer):
    from django_communication.models import SendRateSlot
    from django_communication.providers import memory

    settings.COMMUNICATION = {
        **settings.COMMUNICATION,
        "FALLBACK": {"voice": ["memory"]},
        "RATE_LIMITS": {"twilio": 50},
    }
    twilio_settings.fail_with(503, 20503, "Service unavailable")
    call = send(to=customer, channel="voice", body_text="The shop closes early today.")
    assert (call.status, call.provider) == ("sent", "memory")
    assert call.error.startswith("twilio: Twilio error 20503 (HTTP 503)")
    assert [m.pk for m in memory.messages] == [call.pk]
    assert len(twilio_settings.calls()) == 1  # tried once, then the fallback
    assert SendRateSlot.objects.filter(provider="twilio").exists()  # its slot was taken
