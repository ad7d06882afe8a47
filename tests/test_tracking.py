"""SES events and SMS delivery status applied to messages: statuses, history, suppression,
signals; at-least-once and out-of-order delivery."""

from __future__ import annotations

import pytest

from django_communication import signals
from django_communication.models import Message, MessageEvent, Suppression
from tests.snstools import delivery, permanent_bounce


@pytest.fixture
def received_signals():
    seen = []

    def on_change(sender, message, old_status, new_status, event, **kwargs):
        seen.append(("changed", message.pk, old_status, new_status, event.event_type))

    def on_suppressed(sender, suppression, **kwargs):
        seen.append(("suppressed", suppression.address, suppression.reason))

    signals.message_status_changed.connect(on_change)
    signals.address_suppressed.connect(on_suppressed)
    yield seen
    signals.message_status_changed.disconnect(on_change)
    signals.address_suppressed.disconnect(on_suppressed)


def event(kind, message_id="ses-1", **section):
    key = {
        "Complaint": "complaint",
        "Reject": "reject",
        "DeliveryDelay": "deliveryDelay",
        "Send": "send",
        "Bounce": "bounce",
    }[kind]
    return {"eventType": kind, "mail": {"messageId": message_id}, key: section}


def status(message):
    message.refresh_from_db()
    return message.status


def history(message):
    return list(message.events.values_list("event_type", "status"))


def test_delivery_marks_delivered_with_a_history_row(sns, sent, received_signals):
    notification = sns.notification(delivery())
    assert sns.post(notification).status_code == 200

    assert status(sent) == "delivered"
    [row] = sent.events.all()
    assert (row.event_type, row.status, row.notification_id) == (
        "delivery",
        "delivered",
        notification["MessageId"],
    )
    assert row.occurred_at.isoformat() == "2024-05-01T12:00:00+00:00"
    assert row.payload == delivery()
    assert received_signals == [("changed", sent.pk, "sent", "delivered", "delivery")]


def test_permanent_bounce_bounces_and_suppresses(sns, sent, received_signals):
    assert sns.post(sns.notification(permanent_bounce())).status_code == 200

    assert status(sent) == "bounced"
    [suppression] = Suppression.objects.all()
    assert (suppression.channel, suppression.address, suppression.reason) == (
        "email",
        "john@example.com",
        "bounce",
    )
    assert suppression.source_message_id == sent.pk
    assert suppression.detail == "Permanent / General"
    assert received_signals == [
        ("changed", sent.pk, "sent", "bounced", "bounce"),
        ("suppressed", "john@example.com", "bounce"),
    ]


def test_transient_bounce_bounces_without_suppressing(sns, sent):
    payload = event(
        "Bounce",
        bounceType="Transient",
        bounceSubType="MailboxFull",
        bouncedRecipients=[{"emailAddress": "john@example.com"}],
    )
    assert sns.post(sns.notification(payload)).status_code == 200
    assert status(sent) == "bounced"
    assert not Suppression.objects.exists()


def test_complaint_complains_and_suppresses(sns, sent):
    payload = event(
        "Complaint",
        complainedRecipients=[{"emailAddress": "john@example.com"}],
        complaintFeedbackType="abuse",
    )
    assert sns.post(sns.notification(payload)).status_code == 200
    assert status(sent) == "complained"
    assert Suppression.objects.get().reason == "complaint"


def test_reject_fails(sns, sent):
    assert sns.post(sns.notification(event("Reject", reason="Bad content"))).status_code == 200
    assert status(sent) == "failed"
    assert sent.events.get().detail == "Bad content"


@pytest.mark.parametrize("kind", ["Send", "DeliveryDelay"])
def test_send_and_delay_are_history_only(sns, sent, kind, received_signals):
    assert sns.post(sns.notification(event(kind, delayType="MailboxFull"))).status_code == 200
    assert status(sent) == "sent"
    assert history(sent) == [(("send" if kind == "Send" else "delivery_delay"), "")]
    assert received_signals == []


def test_the_same_notification_twice_changes_nothing(sns, sent, received_signals):
    notification = sns.notification(permanent_bounce())
    assert sns.post(notification).status_code == 200
    assert sns.post(notification).status_code == 200

    assert MessageEvent.objects.count() == 1
    assert Suppression.objects.count() == 1
    assert len(received_signals) == 2  # one change, one suppression: not repeated


def test_redelivered_bounce_does_not_resuppress_an_address_staff_removed(sns, sent):
    notification = sns.notification(permanent_bounce())
    sns.post(notification)
    Suppression.objects.all().delete()
    sns.post(notification)
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("first", ["bounce", "complaint"])
def test_a_late_delivery_never_overwrites_a_bounce_or_complaint(sns, sent, first):
    if first == "bounce":
        payload = permanent_bounce()
    else:
        payload = event("Complaint", complainedRecipients=[{"emailAddress": "john@example.com"}])
    sns.post(sns.notification(payload))
    sns.post(sns.notification(delivery()))

    assert status(sent) == ("bounced" if first == "bounce" else "complained")
    kept = "bounce" if first == "bounce" else "complaint"
    assert sorted(history(sent)) == sorted([(kept, sent.status), ("delivery", "")])


def test_a_bounce_after_delivery_still_bounces(sns, sent):
    sns.post(sns.notification(delivery()))
    sns.post(sns.notification(permanent_bounce()))
    assert status(sent) == "bounced"


def test_complaint_after_delivery_complains(sns, sent):
    sns.post(sns.notification(delivery()))
    sns.post(
        sns.notification(
            event("Complaint", complainedRecipients=[{"emailAddress": "john@example.com"}])
        )
    )
    assert status(sent) == "complained"


def test_unknown_message_id_still_suppresses_the_address(sns, sent):
    assert sns.post(sns.notification(permanent_bounce("ses-unknown"))).status_code == 200
    assert status(sent) == "sent"
    assert not MessageEvent.objects.exists()
    suppression = Suppression.objects.get()
    assert suppression.address == "john@example.com"
    assert suppression.source_message is None


def test_feedback_notification_format_works_too(sns, sent):
    """SES identity notifications say notificationType instead of eventType."""
    payload = permanent_bounce()
    payload["notificationType"] = payload.pop("eventType")
    assert sns.post(sns.notification(payload)).status_code == 200
    assert status(sent) == "bounced"


def test_a_receiver_that_raises_does_not_fail_the_webhook(sns, sent):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.message_status_changed.connect(broken)
    try:
        assert sns.post(sns.notification(delivery())).status_code == 200
    finally:
        signals.message_status_changed.disconnect(broken)
    assert status(sent) == "delivered"


# --------------------------------------------------------------------------- SMS


@pytest.fixture
def sms(comm_config):
    return Message.objects.create(
        channel="sms",
        to_address="+447911123456",
        status="sent",
        provider="sns",
        provider_message_id="sms-1",
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {
                "eventType": "TEXT_DELIVERED",
                "messageId": "sms-1",
                "isFinal": True,
                "eventTimestamp": 1714564800000,
            },
            "delivered",
        ),
        (
            {"eventType": "TEXT_CARRIER_UNREACHABLE", "messageId": "sms-1", "isFinal": True},
            "failed",
        ),
        ({"eventType": "TEXT_PENDING", "messageId": "sms-1", "isFinal": False}, "sent"),
        (
            {
                "notification": {"messageId": "sms-1", "timestamp": "2024-05-01 12:00:00.000"},
                "delivery": {"destination": "+447911123456", "providerResponse": "Delivered"},
                "status": "SUCCESS",
            },
            "delivered",
        ),
        (
            {
                "notification": {"messageId": "sms-1", "timestamp": "2024-05-01 12:00:00.000"},
                "delivery": {"providerResponse": "Unknown handset"},
                "status": "FAILURE",
            },
            "failed",
        ),
    ],
)
def test_sms_delivery_status(sns, sms, payload, expected):
    assert sns.post(sns.notification(payload)).status_code == 200
    assert status(sms) == expected
    assert sms.events.count() == 1


def test_late_sms_delivery_does_not_undo_a_failure(sns, sms):
    sns.post(sns.notification({"eventType": "TEXT_BLOCKED", "messageId": "sms-1", "isFinal": True}))
    sns.post(
        sns.notification({"eventType": "TEXT_DELIVERED", "messageId": "sms-1", "isFinal": True})
    )
    assert status(sms) == "failed"
