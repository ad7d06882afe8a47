import pytest
from django.db import transaction
from django.test import override_settings

from django_communication.models import Message, MessageTemplate
from django_communication.providers import memory
from outbox import emit
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain

RULES = {
    "booking.confirmed": {"template_key": "booking_confirmation", "message_type": "transactional"},
    "booking.cancelled": [
        {"template_key": "booking_cancelled", "channel": "email"},
        {"template_key": "booking_cancelled", "channel": "sms"},
    ],
}


@pytest.fixture
def templates(db):
    MessageTemplate.objects.create(
        key="booking_confirmation",
        name="Confirmation",
        email_subject="Booking {{ ref }}",
        email_body_text="Confirmed {{ ref }}",
    )
    MessageTemplate.objects.create(
        key="booking_cancelled",
        name="Cancelled",
        email_subject="Cancelled {{ ref }}",
        email_body_text="Cancelled {{ ref }}",
        sms_body="Cancelled {{ ref }}",
    )


@override_settings(OUTBOX={"RULES": RULES, "WAKE_ON_COMMIT": False})
def test_commit_then_drain(comm_config, templates, booking, customer):
    with transaction.atomic():
        emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
        emit("booking.cancelled", to=customer, context={"ref": "BK1"}, related_object=booking)
    summary = drain()
    assert summary.dispatched == 2, summary
    assert sorted(m.channel for m in memory.messages) == ["email", "email", "sms"]
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.DISPATCHED}
    assert Message.objects.filter(related_object_id=str(booking.pk)).count() == 3
    assert drain().processed == 0
    assert len(memory.messages) == 3
