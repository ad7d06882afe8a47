"""DjangoMailProvider: Django's SMTP backend against aiosmtpd on loopback, and locmem."""

from __future__ import annotations

import pytest
from django.core import mail

from django_communication import ProviderError, send
from django_communication.models import Message


@pytest.fixture
def django_config(comm_config):
    comm_config.email_provider = "django"
    comm_config.email_from_address = "shop@example.com"
    comm_config.email_from_name = "The Shop"
    comm_config.email_reply_to = "help@example.com"
    comm_config.save()
    return comm_config


def test_text_and_html_arrive_over_smtp(django_config, smtp_settings, customer):
    message = send(
        to=customer, subject="Your booking", body_text="Booked.", body_html="<p>Booked.</p>"
    )

    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.provider, row.error) == ("sent", "django", "")
    [received] = smtp_settings.messages
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["john@example.com"]
    parsed = received.message
    assert parsed["Message-ID"] == row.provider_message_id
    assert row.provider_message_id.endswith("@example.com>")
    assert parsed["Subject"] == "Your booking"
    assert parsed["From"] == "The Shop <shop@example.com>"
    assert parsed["To"] == "john@example.com"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().strip() == "Booked."
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Booked.</p>"


def test_text_only_without_reply_to(django_config, smtp_settings):
    django_config.email_reply_to = ""
    django_config.save()

    message = send(to="ann@example.com", subject="Plain", body_text="Just text.")

    [received] = smtp_settings.messages
    assert received.message.get_content_type() == "text/plain"
    assert received.message["Reply-To"] is None
    assert received.message["Message-ID"] == message.provider_message_id


@pytest.mark.parametrize(
    ("refuse", "code", "retryable"),
    [
        ("refuse_recipients", 550, False),
        ("refuse_recipients", 451, True),
        ("refuse_data", 554, False),
        ("refuse_data", 451, True),
    ],
)
def test_smtp_refusals_are_classified(
    django_config, smtp_settings, customer, refuse, code, retryable
):
    getattr(smtp_settings, refuse)(code)

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert info.value.retryable is retryable
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed"
    assert str(code) in row.error
    assert row.provider_message_id == ""
    assert smtp_settings.messages == []


def test_server_down_is_retryable(django_config, smtp_settings, customer):
    smtp_settings.stop()

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert info.value.retryable is True
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed" and "Connection" in row.error

    smtp_settings.start()  # same port again
    assert send(to=customer, subject="Hi", body_text="Hello").status == "sent"
    assert len(smtp_settings.messages) == 1


def test_locmem_backend_outbox(django_config, settings, customer):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []

    message = send(to=customer, subject="Hi", body_text="Hello", body_html="<b>Hello</b>")

    [email] = mail.outbox
    assert email.subject == "Hi"
    assert email.body == "Hello"
    assert email.alternatives[0][:2] == ("<b>Hello</b>", "text/html")
    assert email.to == ["john@example.com"]
    assert email.from_email == "The Shop <shop@example.com>"
    assert email.extra_headers["Message-ID"] == message.provider_message_id
    assert email.extra_headers["Reply-To"] == "help@example.com"
    assert Message.objects.get(pk=message.pk).status == "sent"


def test_every_attempt_at_a_message_carries_the_same_message_id(
    django_config, smtp_settings, customer
):
    """A resend (after an outcome was lost, say) is recognisable by its Message-ID: derived from
    the idempotency key, not drawn anew per attempt."""
    from django_communication.providers.base import stable_message_id
    from django_communication.providers.registry import provider_for_channel

    message = send(to=customer, subject="Hi", body_text="Hello", idempotency_key="order:7:email")
    provider = provider_for_channel("email")
    provider.send(message)  # the same message, handed over again
    other = send(to=customer, subject="Hi", body_text="Hello", idempotency_key="order:8:email")

    first, again, different = (m.message["Message-ID"] for m in smtp_settings.messages)
    assert first == again == message.provider_message_id == stable_message_id(message)
    assert first.endswith("@example.com>")
    assert different == other.provider_message_id != first
