"""The send() contract: the Message row, the audit links, provider outcomes, idempotency."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.contenttypes.models import ContentType

from django_communication import (
    CommunicationError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidRecipientError,
    ProviderError,
    TemplateNotFoundError,
    TemplateRenderError,
    get_messages_for_object,
    send,
)
from django_communication.models import CommunicationSettings, Message
from django_communication.providers import memory
from tests.providers import TEST_PROVIDERS, FailingProvider, ScriptedProvider


@pytest.fixture
def welcome(make_template, db):
    return make_template(
        "welcome",
        name="Welcome",
        email_subject="Welcome, {{ recipient.name }}",
        email_body_text="Hello {{ recipient.name }}, booking {{ ref }}.",
        email_body_html="<p>Hello {{ recipient.name }}, booking {{ ref }}.</p>",
        sms_body="Hi {{ recipient.name }}: {{ ref }}",
    )


@pytest.fixture
def test_providers(settings):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    ScriptedProvider.reset()
    yield
    ScriptedProvider.reset()


@pytest.mark.parametrize(
    "error",
    [
        TemplateNotFoundError,
        TemplateRenderError,
        InvalidRecipientError,
        InvalidArgumentError,
        ConfigurationError,
        ProviderError,
    ],
)
def test_every_error_is_a_communication_error(error):
    assert issubclass(error, CommunicationError)


def test_send_from_template_writes_a_sent_message(comm_config, customer, welcome):
    message = send(to=customer, template_key="welcome", context={"ref": "BK1"})

    row = Message.objects.get()
    assert row.pk == message.pk
    assert row.status == "sent"
    assert row.channel == "email"
    assert row.direction == "outbound"
    assert row.message_type == "transactional"
    assert row.to_address == "john@example.com"
    assert row.from_address == "shop@example.com"
    assert row.subject == "Welcome, John"
    assert row.body_text == "Hello John, booking BK1."
    assert row.body_html == "<p>Hello John, booking BK1.</p>"
    assert row.template == welcome
    assert row.provider == "memory"
    assert row.provider_message_id.startswith("memory-")
    assert row.sent_at is not None
    assert row.error == ""
    assert row.recipient == customer
    assert memory.messages == [message]


def test_sms_from_address_is_the_origination_number(comm_config, customer, welcome):
    message = send(to=customer, template_key="welcome", context={"ref": "BK1"}, channel="sms")

    assert message.from_address == "+15005550006"
    assert message.to_address == "+447911123456"
    assert message.body_text == "Hi John: BK1"
    assert message.subject == ""
    assert message.body_html == ""


def test_sms_from_address_falls_back_to_sender_id(comm_config, customer, welcome):
    comm_config.sms_origination_number = ""
    comm_config.sms_sender_id = "ACMESHOP"
    comm_config.save()

    message = send(to=customer, template_key="welcome", channel="sms")

    assert message.from_address == "ACMESHOP"


def test_email_from_formats_name_and_address(comm_config, customer, welcome):
    comm_config.email_from_name = "Shop, Inc."
    comm_config.save()

    message = send(to=customer, template_key="welcome")

    assert comm_config.email_from == '"Shop, Inc." <shop@example.com>'
    assert message.from_address == '"Shop, Inc." <shop@example.com>'


def test_email_from_without_name_is_the_bare_address(comm_config):
    comm_config.email_from_name = "Acme Shop"
    assert comm_config.email_from == "Acme Shop <shop@example.com>"
    comm_config.email_from_name = ""
    assert comm_config.email_from == "shop@example.com"


def test_settings_singleton_exists_after_migrate(db):
    first = CommunicationSettings.objects.first()
    assert first is not None and first.email_provider == "console"


def test_settings_singleton_first_and_get_solo_agree(db):
    solo = CommunicationSettings.get_solo()
    solo.email_from_address = "team@example.com"
    solo.save()

    first = CommunicationSettings.objects.first()
    assert first is not None
    assert first.pk == solo.pk == CommunicationSettings.get_solo().pk
    assert first.email_from_address == "team@example.com"
    assert CommunicationSettings.objects.count() == 1
    # Saving another instance updates the singleton row instead of adding one.
    CommunicationSettings(email_from_address="other@example.com").save()
    assert CommunicationSettings.objects.count() == 1
    assert CommunicationSettings.get_solo().email_from_address == "other@example.com"


def test_related_object_with_uuid_pk(comm_config, customer, booking, welcome):
    other = type(booking).objects.create(ref="BK2", customer=customer)
    first = send(to=customer, template_key="welcome", related_object=booking)
    second = send(to=customer, template_key="welcome", channel="sms", related_object=booking)
    send(to=customer, template_key="welcome", related_object=other)
    send(to=customer, template_key="welcome")

    assert isinstance(booking.pk, uuid.UUID)
    assert list(get_messages_for_object(booking)) == [second, first]
    assert len(get_messages_for_object(other)) == 1
    ct = ContentType.objects.get_for_model(booking)
    filtered = Message.objects.filter(related_content_type=ct, related_object_id=str(booking.pk))
    assert set(filtered) == {first, second}
    assert Message.objects.get(pk=first.pk).related_object == booking


def test_get_messages_for_object_needs_a_saved_instance(db, customer):
    from tests.testapp.models import Booking

    with pytest.raises(InvalidArgumentError):
        get_messages_for_object(Booking(ref="X", customer=customer, id=None))
    with pytest.raises(InvalidArgumentError):
        get_messages_for_object("BK1")


def test_related_object_must_be_saved(comm_config, customer, welcome):
    from tests.testapp.models import Customer

    with pytest.raises(InvalidArgumentError):
        send(to=customer, template_key="welcome", related_object=Customer(name="unsaved"))
    assert not Message.objects.exists()
    assert memory.messages == []


def test_context_must_be_a_dict(comm_config, customer, welcome):
    with pytest.raises(InvalidArgumentError):
        send(to=customer, template_key="welcome", context=[("ref", "BK1")])
    assert not Message.objects.exists()


def test_plain_string_recipient_has_no_recipient_link(comm_config, welcome):
    message = send(to="jane@example.com", template_key="welcome")

    assert message.to_address == "jane@example.com"
    assert message.recipient_content_type is None
    assert message.recipient_object_id == ""


@pytest.mark.django_db(transaction=True)
def test_row_is_pending_and_committed_during_the_provider_call(customer, welcome, test_providers):
    config = CommunicationSettings.get_solo()
    config.email_provider = "scripted"
    config.save()
    ScriptedProvider.reset(check_committed=True)

    message = send(to=customer, template_key="welcome")

    [call] = ScriptedProvider.calls
    assert call.pk == message.pk
    assert call.status == "pending"
    assert call.committed_status == "pending"
    assert call.in_atomic_block is False
    row = Message.objects.get(pk=message.pk)
    assert row.status == "sent"
    assert row.provider == "scripted"
    assert row.provider_message_id == "scripted-1"
    assert row.sent_at is not None


def test_provider_rejection_raises_with_the_failed_message(
    comm_config, customer, welcome, test_providers
):
    comm_config.email_provider = "failing"
    comm_config.save()

    with pytest.raises(ProviderError) as info:
        send(to=customer, template_key="welcome")

    error = info.value
    assert error.retryable is False
    assert error.permanent is True
    assert error.provider == "failing"
    assert isinstance(error.message, Message)
    row = Message.objects.get()
    assert row.pk == error.message.pk
    assert row.status == "failed"
    assert "mailbox unavailable" in row.error
    assert row.provider == "failing"
    assert row.sent_at is None
    assert row.provider_message_id == ""
    assert error.message.status == "failed"


def test_unexpected_provider_exception_is_a_retryable_provider_error(
    comm_config, customer, welcome, test_providers
):
    comm_config.email_provider = "failing"
    comm_config.save()
    FailingProvider.error = ConnectionResetError("peer reset")
    try:
        with pytest.raises(ProviderError) as info:
            send(to=customer, template_key="welcome")
    finally:
        FailingProvider.error = ProviderError("mailbox unavailable", retryable=False)

    assert info.value.retryable is True
    assert info.value.permanent is False
    assert isinstance(info.value.__cause__, ConnectionResetError)
    row = Message.objects.get()
    assert row.status == "failed"
    assert "ConnectionResetError" in row.error
    assert "peer reset" in row.error


def test_idempotent_send_after_success_does_not_send_again(scripted, customer, welcome):
    first = send(to=customer, template_key="welcome", idempotency_key="welcome:1")
    again = send(to=customer, template_key="welcome", idempotency_key="welcome:1")

    assert again.pk == first.pk
    assert again.status == "sent"
    assert again.provider_message_id == "scripted-1"
    assert len(scripted.calls) == 1
    assert Message.objects.count() == 1


def test_different_idempotency_keys_send_separately(scripted, customer, welcome):
    first = send(to=customer, template_key="welcome", idempotency_key="welcome:1")
    second = send(to=customer, template_key="welcome", idempotency_key="welcome:2")

    assert first.pk != second.pk
    assert len(scripted.calls) == 2


def test_idempotent_send_after_failure_retries_on_the_same_row(scripted, customer, welcome):
    scripted.reset(record_status=True)
    scripted.fail_with = [ProviderError("throttled", retryable=True)]

    with pytest.raises(ProviderError) as info:
        send(to=customer, template_key="welcome", idempotency_key="welcome:1")
    assert info.value.retryable is True
    assert Message.objects.get().status == "failed"

    retried = send(to=customer, template_key="welcome", idempotency_key="welcome:1")

    assert retried.pk == info.value.message.pk
    assert [call.pk for call in scripted.calls] == [retried.pk, retried.pk]
    # The retry, like a first attempt, hands the provider a pending row.
    assert [call.status for call in scripted.calls] == ["pending", "pending"]
    row = Message.objects.get()
    assert row.status == "sent"
    assert row.error == ""
    assert row.provider_message_id == "scripted-2"
    assert row.sent_at is not None


def test_settings_change_switches_provider(comm_config, customer, welcome, test_providers):
    send(to=customer, template_key="welcome")
    assert len(memory.messages) == 1

    comm_config.email_provider = "scripted"
    comm_config.save()
    message = send(to=customer, template_key="welcome")

    assert message.provider == "scripted"
    assert len(memory.messages) == 1
    assert len(ScriptedProvider.calls) == 1


def test_ad_hoc_email(comm_config, customer):
    message = send(to=customer, subject="Hello\nthere", body_text="Plain body", channel="email")

    assert message.status == "sent"
    assert message.template is None
    assert message.subject == "Hello there"
    assert message.body_text == "Plain body"
    assert message.message_type == ""


def test_ad_hoc_sms_needs_only_a_body(comm_config, customer):
    message = send(to=customer, body_text="Your code is 1234", channel="sms")

    assert message.channel == "sms"
    assert message.body_text == "Your code is 1234"


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({"channel": "email", "body_text": "Body only"}, "subject"),
        ({"channel": "email", "subject": "Subject only"}, "body"),
        ({"channel": "email", "subject": "S", "body_text": "  "}, "body"),
        ({"channel": "sms"}, "body"),
        ({"channel": "sms", "subject": "SMS has no subject"}, "body"),
    ],
)
def test_ad_hoc_send_without_content_is_rejected(comm_config, customer, kwargs, missing):
    with pytest.raises(InvalidArgumentError, match=missing):
        send(to=customer, **kwargs)
    assert not Message.objects.exists()
    assert memory.messages == []


def test_idempotency_race_with_a_concurrent_insert(scripted, customer, welcome, monkeypatch):
    """Another process inserted the key between the lookup and the insert."""
    from django.db.models import QuerySet

    first = send(to=customer, template_key="welcome", idempotency_key="welcome:1")
    original_first = QuerySet.first

    def first_missing_the_row(self):
        return None if self.model is Message else original_first(self)

    monkeypatch.setattr(QuerySet, "first", first_missing_the_row)
    again = send(to=customer, template_key="welcome", idempotency_key="welcome:1")
    monkeypatch.undo()

    assert again.pk == first.pk
    assert again.status == "sent"
    assert len(scripted.calls) == 1
    # The failed insert was rolled back to its savepoint: the connection is still usable.
    assert Message.objects.count() == 1


def test_related_object_with_a_default_pk_but_never_saved_is_refused(comm_config, customer):
    from tests.testapp.models import Booking

    unsaved = Booking(ref="NEW", customer=customer)  # its UUID pk is set before any save
    with pytest.raises(InvalidArgumentError, match="saved model instance"):
        send(to=customer, subject="Hi", body_text="Hello", related_object=unsaved)
    assert not Message.objects.exists()
