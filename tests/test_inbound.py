"""Inbound email (SES receipt rule → SNS) and SMS (SNS two-way SMS) recorded in the audit log."""

from __future__ import annotations

import base64

import pytest

from django_communication import signals
from django_communication.models import Message, MessageEvent

RAW = (
    "From: John <john@example.com>\r\n"
    "To: shop@example.com\r\n"
    "Subject: Re: your booking\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCan I move it?\r\n"
    "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Can I move it?</p>\r\n"
    "--b--\r\n"
)


def receipt(encoding="UTF8", message_id="inbound-1"):
    content = base64.b64encode(RAW.encode()).decode() if encoding == "BASE64" else RAW
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2024-05-01T12:00:00.000Z",
            "source": "john@example.com",
            "messageId": message_id,
            "destination": ["shop@example.com"],
            "commonHeaders": {
                "from": ["John <john@example.com>"],
                "to": ["shop@example.com"],
                "subject": "Re: your booking",
            },
        },
        "receipt": {"action": {"type": "SNS", "topicArn": "x", "encoding": encoding}},
        "content": content,
    }


def sms(message_id="sms-in-1", sender="+447911123456", body="Running late"):
    return {
        "originationNumber": sender,
        "destinationNumber": "+15005550006",
        "messageKeyword": "KEYWORD",
        "messageBody": body,
        "inboundMessageId": message_id,
        "previousPublishedMessageId": "sms-out-1",
    }


def find_customer(address, channel):
    from tests.testapp.models import Customer

    field = "email__iexact" if channel == "email" else "phone"
    return Customer.objects.filter(**{field: address}).first()


@pytest.fixture
def resolver(settings):
    settings.COMMUNICATION = {
        **settings.COMMUNICATION,
        "INBOUND_SENDER_RESOLVER": "tests.test_inbound.find_customer",
    }


@pytest.fixture
def received():
    seen = []

    def receiver(sender, message, **kwargs):
        seen.append(message)

    signals.message_received.connect(receiver)
    yield seen
    signals.message_received.disconnect(receiver)


@pytest.mark.parametrize("encoding", ["UTF8", "BASE64"])
def test_received_email_is_recorded_and_linked(sns, customer, resolver, received, encoding):
    assert sns.post(sns.notification(receipt(encoding))).status_code == 200

    message = Message.objects.get()
    assert (message.direction, message.status, message.channel) == ("inbound", "received", "email")
    assert (message.from_address, message.to_address) == ("john@example.com", "shop@example.com")
    assert message.subject == "Re: your booking"
    assert message.body_text.strip() == "Can I move it?"
    assert message.body_html.strip() == "<p>Can I move it?</p>"
    assert (message.provider, message.provider_message_id) == ("ses", "inbound-1")
    assert message.recipient == customer
    assert message.events.get().event_type == "received"
    assert received == [message]


def test_received_email_without_content_or_resolver(sns, customer, received):
    payload = receipt()
    del payload["content"]
    assert sns.post(sns.notification(payload)).status_code == 200
    message = Message.objects.get()
    assert message.body_text == "" and message.recipient is None
    assert len(received) == 1


def test_the_same_receipt_twice_is_recorded_once(sns, received):
    notification = sns.notification(receipt())
    assert sns.post(notification).status_code == 200
    assert sns.post(notification).status_code == 200
    # Even as a new SNS message (a second subscription): the SES message id decides.
    assert sns.post(sns.notification(receipt())).status_code == 200
    assert Message.objects.count() == 1 and MessageEvent.objects.count() == 1
    assert len(received) == 1


def test_received_sms_is_recorded_and_linked(sns, resolver, received, db):
    from tests.testapp.models import Customer

    customer = Customer.objects.create(name="Ann", phone="+447911123456")
    assert sns.post(sns.notification(sms())).status_code == 200

    message = Message.objects.get()
    assert (message.direction, message.status, message.channel) == ("inbound", "received", "sms")
    assert (message.from_address, message.to_address) == ("+447911123456", "+15005550006")
    assert message.body_text == "Running late"
    assert message.recipient == customer
    assert received == [message]


def test_received_sms_from_a_stranger_has_no_recipient(sns, resolver, db):
    assert sns.post(sns.notification(sms(sender="+15550100999"))).status_code == 200
    assert Message.objects.get().recipient is None


def test_the_same_sms_twice_is_recorded_once(sns, received, db):
    notification = sns.notification(sms())
    sns.post(notification)
    sns.post(notification)
    assert Message.objects.count() == 1 and len(received) == 1


def test_forged_inbound_records_nothing(sns, received, db):
    data = sns.notification(sms())
    data["Message"] = data["Message"].replace("Running late", "Send me everything")
    assert sns.post(data).status_code == 403
    assert not Message.objects.exists() and received == []


def test_a_stop_reply_opts_the_sender_out_of_sms_and_start_back_in(sns, comm_config):
    from django_communication import RecipientOptedOutError, send
    from django_communication.models import OptOut

    comm_config.sms_provider = "memory"
    comm_config.save()
    phone = "+447911123456"
    assert sns.post(sns.notification(sms("in-1", phone, body="  Stop "))).status_code == 200
    opt_outs = OptOut.objects.filter(address=phone, channel="sms")  # re-evaluated at each use
    assert sorted(opt_outs.values_list("message_type", flat=True)) == ["announcement", "reminder"]
    assert set(opt_outs.values_list("source", flat=True)) == {"sms-keyword"}
    with pytest.raises(RecipientOptedOutError):
        send(to=phone, body_text="Sale!", channel="sms", message_type="announcement")
    # Transactional messages still go out; email is not affected.
    send(to=phone, body_text="Your code", channel="sms", message_type="transactional")
    assert not OptOut.objects.filter(channel="email").exists()

    # A sentence that merely contains the word is a message, not a keyword.
    sns.post(sns.notification(sms("in-2", phone, body="please stop calling at night")))
    assert opt_outs.count() == 2
    assert sns.post(sns.notification(sms("in-3", phone, body="START"))).status_code == 200
    assert not opt_outs.exists()
    assert send(to=phone, body_text="Sale!", channel="sms", message_type="announcement").status == (
        "sent"
    )
    assert Message.objects.filter(direction="inbound").count() == 3
