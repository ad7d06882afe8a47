"""Provider fallback (COMMUNICATION["FALLBACK"]): SES on moto's server, then Django's SMTP
backend on aiosmtpd, both on loopback."""

from __future__ import annotations

import boto3
import pytest

from django_communication import ProviderError, send
from django_communication.models import Message, MessageStatus
from django_communication.providers import memory
from django_communication.sending import SendRequest, send_many
from tests.servers import sent_by_moto

REGION = "eu-west-1"


@pytest.fixture
def ses_then_smtp(comm_config, moto_server, smtp_settings, settings):
    comm_config.email_provider = "ses"
    comm_config.ses_region = REGION
    comm_config.email_from_address = "shop@example.com"
    comm_config.save()
    boto3.client("sesv2", region_name=REGION).create_email_identity(
        EmailIdentity="shop@example.com"
    )
    moto_server.requests.clear()
    settings.COMMUNICATION = {"FALLBACK": {"email": ["django"]}}
    return comm_config


def test_ses_down_smtp_delivers_once(ses_then_smtp, moto_server, smtp_server, customer):
    moto_server.stop()

    message = send(to=customer, subject="Your booking", body_text="Booked.")

    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.provider) == (MessageStatus.SENT, "django")
    assert row.sent_at is not None
    assert row.error.startswith("ses: EndpointConnectionError")
    assert row.error.endswith("(retryable); sent by django")
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["john@example.com"]
    assert received.message["Subject"] == "Your booking"
    assert row.provider_message_id == received.message["Message-ID"]
    assert Message.objects.count() == 1
    # Once: an idempotent repeat, or the next send once SES is back, does not go to SMTP again.
    moto_server.start()
    again = send(to=customer, subject="Next", body_text="Hello")
    assert (again.provider, again.error) == ("ses", "")
    assert len(smtp_server.messages) == 1 and len(sent_by_moto(REGION)) == 1


def test_throttling_falls_through(ses_then_smtp, moto_server, smtp_server, customer):
    moto_server.fail_with(400, "TooManyRequestsException", "Maximum sending rate exceeded.")

    message = send(to=customer, subject="Hi", body_text="Hello")

    assert message.provider == "django"
    assert message.error.startswith("ses: TooManyRequestsException (HTTP 400)")
    assert len(smtp_server.messages) == 1


def test_permanent_error_does_not_fall_through(ses_then_smtp, moto_server, smtp_server, customer):
    moto_server.fail_with(400, "BadRequestException", "Illegal address")

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert (info.value.retryable, info.value.provider) == (False, "ses")
    row = Message.objects.get(pk=info.value.message.pk)
    assert (row.status, row.provider) == (MessageStatus.FAILED, "ses")
    assert row.error.startswith("BadRequestException") and "django" not in row.error
    assert smtp_server.messages == []


def test_every_provider_down_records_each_failure(
    ses_then_smtp, moto_server, smtp_server, customer
):
    moto_server.stop()
    smtp_server.stop()

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert (info.value.retryable, info.value.provider) == (True, "django")
    row = Message.objects.get(pk=info.value.message.pk)
    assert (row.status, row.provider) == (MessageStatus.FAILED, "django")
    first, second = row.error.split("; ")
    assert first.startswith("ses: EndpointConnectionError") and first.endswith("(retryable)")
    assert second.startswith("django: ") and second.endswith("(retryable)")


def test_fallback_refusing_permanently_ends_the_chain(
    ses_then_smtp, moto_server, smtp_server, customer
):
    moto_server.stop()
    smtp_server.refuse_recipients(550)

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert (info.value.retryable, info.value.provider) == (False, "django")
    assert info.value.message.error.startswith("ses: EndpointConnectionError")
    assert "; django: recipient refused" in info.value.message.error


def test_batch_only_failed_messages_fall_through(comm_config, settings, customer):
    """In a batch, the messages the first provider accepted stay with it."""
    from tests.providers import TEST_PROVIDERS, ScriptedProvider

    settings.COMMUNICATION = {
        "PROVIDERS": TEST_PROVIDERS,
        "FALLBACK": {"email": ["memory", "scripted"], "sms": ["scripted"]},
    }
    comm_config.email_provider = "scripted"
    comm_config.save()
    ScriptedProvider.reset()
    ScriptedProvider.fail_with = [None, ProviderError("busy", retryable=True), None]

    results = send_many(
        [SendRequest(to=f"user{n}@example.com", subject="Hi", body_text="Hello") for n in range(3)]
    )

    assert [m.provider for m in results] == ["scripted", "memory", "scripted"]
    assert [m.error for m in results] == ["", "scripted: busy (retryable); sent by memory", ""]
    assert [m.to_address for m in memory.messages] == ["user1@example.com"]
    assert all(m.status == MessageStatus.SENT for m in Message.objects.all())


def test_unknown_fallback_is_skipped_at_send_time(comm_config, settings, customer):
    from tests.providers import TEST_PROVIDERS, ScriptedProvider

    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS, "FALLBACK": {"email": ["nope"]}}
    comm_config.email_provider = "scripted"
    comm_config.save()
    ScriptedProvider.reset()
    ScriptedProvider.fail_with = [ProviderError("busy", retryable=True)]

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    row = Message.objects.get(pk=info.value.message.pk)
    assert (row.status, row.provider) == (MessageStatus.FAILED, "scripted")
    assert row.error.startswith("scripted: busy (retryable); nope: Unknown provider 'nope'")
