"""Twilio's webhooks: status callbacks, inbound SMS and keypad replies, each signed with the
twilio package's RequestValidator algorithm (HMAC-SHA1 of the URL and the sorted form fields
under the auth token) — and forged, unsigned, replayed and malformed ones, refused with nothing
changed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from twilio.request_validator import RequestValidator

from django_communication import send
from django_communication.models import Message, MessageEvent, OptOut
from django_communication.signals import message_status_changed, reply_received
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, SITE_URL

FORM = "application/x-www-form-urlencoded"


def post(client, path, params, *, url=None, token=AUTH_TOKEN, signature=None, **headers):
    """POST ``params`` to ``path`` as Twilio would, signed for ``url`` (SITE_URL + path)."""
    if signature is None:
        signature = RequestValidator(token).compute_signature(url or SITE_URL + path, params)
    if signature:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.post(path, urlencode(params), content_type=FORM, **headers)


class Receiver:
    def __init__(self, signal):
        self.calls: list[dict] = []
        self.signal = signal
        signal.connect(self)

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs)


@pytest.fixture
def receivers():
    made = []

    def make(signal):
        made.append(Receiver(signal))
        return made[-1]

    yield make
    for receiver in made:
        receiver.signal.disconnect(receiver)


STATUS = reverse("django_communication:twilio_status")
SMS = reverse("django_communication:twilio_sms")


def sms_status(message, status, **extra):
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": message.provider_message_id,
        "MessageStatus": status,
        **extra,
    }


def call_status(message, status, sequence):
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": message.provider_message_id,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "Timestamp": f"Wed, 02 Dec 2026 01:00:0{sequence} +0000",
    }


# --------------------------------------------------------------------------- status callbacks


def test_sms_delivered_moves_the_message_and_signals_once(
    client, twilio_settings, customer, receivers
):
    changed = receivers(message_status_changed)
    message = send(to=customer, channel="sms", body_text="Hi")
    assert post(client, STATUS, sms_status(message, "sent")).status_code == 200
    response = post(client, STATUS, sms_status(message, "delivered"))
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"
    assert [(c["old_status"], c["new_status"]) for c in changed.calls] == [("sent", "delivered")]
    history = list(message.events.values_list("event_type", "status", "detail"))
    assert history == [("sms_status", "", "sent"), ("sms_delivered", "delivered", "delivered")]

    # The same callback again — a replay — is refused and changes nothing.
    replay = post(client, STATUS, sms_status(message, "delivered"))
    assert replay.status_code == 409
    assert message.events.count() == 2 and len(changed.calls) == 1


def test_undelivered_sms_fails_with_the_error_code(client, twilio_settings, customer):
    message = send(to=customer, channel="sms", body_text="Hi")
    post(client, STATUS, sms_status(message, "undelivered", ErrorCode="30003"))
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.events.get().detail == "undelivered (error 30003)"


def test_call_progress_is_history_and_the_status_never_goes_back(client, twilio_settings, customer):
    message = send(to=customer, channel="voice", body_text="Hello")
    for sequence, status in enumerate(["initiated", "ringing", "in-progress", "completed"]):
        assert post(client, STATUS, call_status(message, status, sequence)).status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"
    events = list(message.events.order_by("occurred_at").values_list("detail", "status"))
    assert events == [
        ("initiated", ""),
        ("ringing", ""),
        ("in-progress", ""),
        ("completed", "delivered"),
    ]
    # A late "in-progress" after completion is history only.
    post(client, STATUS, call_status(message, "in-progress", 9))  # a replay of the status
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_an_unanswered_call_fails(client, twilio_settings, customer, status):
    message = send(to=customer, channel="voice", body_text="Hello")
    post(client, STATUS, call_status(message, status, 1))
    message.refresh_from_db()
    assert (message.status, message.events.get().event_type) == ("failed", "call_failed")


def test_a_status_of_an_unknown_sid_is_ignored(client, twilio_settings, db):
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": "SMunknown", "MessageStatus": "delivered"}
    response = post(client, STATUS, params)
    assert (response.status_code, response.content) == (200, b"ignored")
    assert not MessageEvent.objects.exists()


# ------------------------------------------------------------------ forged, unsigned, malformed


@pytest.fixture
def sent_sms(twilio_settings, customer):
    return send(to=customer, channel="sms", body_text="Hi")


def assert_unchanged(message):
    message.refresh_from_db()
    assert message.status == "sent" and not message.events.exists()


@pytest.mark.parametrize(
    "how",
    [
        {"signature": ""},  # unsigned
        {"signature": "bm90IGEgc2lnbmF0dXJl"},  # forged
        {"token": "not-the-auth-token"},  # signed with another key
        {"url": f"{SITE_URL}/communication/twilio/sms/"},  # signed for another endpoint
        {"url": "https://attacker.example/communication/twilio/status/"},
    ],
)
def test_forged_and_unsigned_callbacks_are_refused(client, sent_sms, how):
    response = post(client, STATUS, sms_status(sent_sms, "delivered"), **how)
    assert response.status_code == 403
    assert response.content == b"Forbidden"  # the phrase only; the reason is logged
    assert_unchanged(sent_sms)


def test_a_changed_field_breaks_the_signature(client, sent_sms):
    params = sms_status(sent_sms, "sent")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(SITE_URL + STATUS, params)
    response = post(client, STATUS, {**params, "MessageStatus": "delivered"}, signature=signature)
    assert response.status_code == 403
    assert_unchanged(sent_sms)


def test_another_accounts_callback_is_refused(client, sent_sms):
    params = {**sms_status(sent_sms, "delivered"), "AccountSid": "AC" + "2" * 32}
    assert post(client, STATUS, params).status_code == 403
    assert_unchanged(sent_sms)


@pytest.mark.parametrize(
    "params",
    [
        {"AccountSid": ACCOUNT_SID},
        {"AccountSid": ACCOUNT_SID, "MessageSid": "SM1"},
        {"AccountSid": ACCOUNT_SID, "MessageSid": "SM1", "MessageStatus": "<script>"},
    ],
)
def test_malformed_callbacks_are_refused(client, sent_sms, params):
    assert post(client, STATUS, params).status_code == 400
    assert_unchanged(sent_sms)


def test_only_signed_forms_by_post(client, sent_sms):
    assert client.get(STATUS).status_code == 405
    params = sms_status(sent_sms, "delivered")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(SITE_URL + STATUS, params)
    response = client.post(
        STATUS, params, content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 400
    assert_unchanged(sent_sms)


def test_behind_a_proxy_the_forwarded_scheme_is_the_signed_one(client, sent_sms, settings):
    """Without SITE_URL, the URL is rebuilt from the request: SECURE_PROXY_SSL_HEADER makes it
    the https URL Twilio called, not the proxy's plain http hop."""
    settings.COMMUNICATION = {k: v for k, v in settings.COMMUNICATION.items() if k != "SITE_URL"}
    params = sms_status(sent_sms, "delivered")
    public = "https://testserver" + STATUS
    forwarded = {"HTTP_X_FORWARDED_PROTO": "https"}
    assert post(client, STATUS, params, url=public, **forwarded).status_code == 403
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert post(client, STATUS, params, url=public, **forwarded).status_code == 200
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


# ------------------------------------------------------------------------------ inbound SMS


def inbound(sid, body, sender="+447911123456"):
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
    }


def test_an_inbound_sms_is_received_and_stop_opts_out(client, twilio_settings, db):
    response = post(client, SMS, inbound("SMin1", " stop "))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert ET.fromstring(response.content).tag == "Response"
    message = Message.objects.get(direction="inbound")
    assert (message.channel, message.provider, message.body_text) == ("sms", "twilio", " stop ")
    assert set(OptOut.objects.values_list("channel", "message_type")) == {
        ("sms", "announcement"),
        ("sms", "reminder"),
    }
    assert post(client, SMS, inbound("SMin1", " stop ")).status_code == 409  # replayed
    assert Message.objects.count() == 1

    post(client, SMS, inbound("SMin2", "START"))
    assert not OptOut.objects.exists()


def test_a_forged_inbound_sms_records_nothing(client, twilio_settings, db):
    response = post(client, SMS, inbound("SMin1", "STOP"), token="guess")
    assert response.status_code == 403
    assert not Message.objects.exists() and not OptOut.objects.exists()


# ---------------------------------------------------------------------------- keypad replies


@pytest.fixture
def call(twilio_settings, customer, booking, reminder_call):
    return send(
        to=customer,
        template_key="reminder-call",
        context={"ref": booking.ref},
        channel="voice",
        related_object=booking,
    )


def keypad(call, digits, call_sid=None):
    path = reverse("django_communication:twilio_keypad", args=[call.pk])
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid or call.provider_message_id,
        "Digits": digits,
        "From": "+15005550006",
        "To": call.to_address,
    }
    return path, params


def test_a_keypad_reply_is_recorded_and_signalled_once(client, call, customer, booking, receivers):
    replies = receivers(reply_received)
    response = post(client, *keypad(call, "1"))
    assert response.status_code == 200
    assert [child.tag for child in ET.fromstring(response.content)] == ["Hangup"]

    reply = Message.objects.get(direction="inbound")
    assert (reply.channel, reply.status, reply.body_text) == ("voice", "received", "confirm")
    assert reply.in_reply_to == call
    assert reply.related_object == booking and reply.recipient == customer
    assert reply.choices == {"1": "confirm"}
    assert list(call.replies.all()) == [reply]
    assert reply.events.get().event_type == "keypad_reply"
    [signal] = replies.calls
    assert (signal["message"], signal["reply"], signal["digit"], signal["label"]) == (
        call,
        reply,
        "1",
        "confirm",
    )

    # Replayed: refused, nothing recorded, no second signal.
    assert post(client, *keypad(call, "1")).status_code == 409
    assert post(client, *keypad(call, "2")).status_code == 409  # one reply per call
    assert Message.objects.filter(direction="inbound").count() == 1
    assert len(replies.calls) == 1


def test_a_key_that_is_no_choice_hears_the_message_again(client, call, receivers):
    replies = receivers(reply_received)
    response = post(client, *keypad(call, "7"))
    assert response.status_code == 200
    gather = ET.fromstring(response.content).find("Gather")
    assert gather.get("action") == f"{SITE_URL}{keypad(call, '7')[0]}"
    assert gather.find("Say").text.startswith("Booking BK1 is tomorrow.")
    assert not Message.objects.filter(direction="inbound").exists() and not replies.calls


@pytest.mark.parametrize(
    ("digits", "call_sid", "status"),
    [("12", None, 400), ("", None, 400), ("1", "CAsomeoneelse", 403)],
)
def test_malformed_or_foreign_keypad_replies_are_refused(
    client, call, receivers, digits, call_sid, status
):
    replies = receivers(reply_received)
    assert post(client, *keypad(call, digits, call_sid)).status_code == status
    assert not Message.objects.filter(direction="inbound").exists() and not replies.calls


def test_a_keypad_reply_to_no_call_is_refused(client, call):
    path, params = keypad(call, "1")
    path = path.replace(str(call.pk), "00000000-0000-0000-0000-000000000000")
    assert post(client, path, params).status_code == 404
    assert not Message.objects.filter(direction="inbound").exists()
