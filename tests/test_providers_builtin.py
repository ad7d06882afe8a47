"""The console and memory providers, provider lookup, and the singleton's provider validation."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from django_communication import CommunicationError, ConfigurationError, send
from django_communication.admin.communication_settings import CommunicationSettingsForm
from django_communication.models import CommunicationSettings, Message
from django_communication.providers import memory
from tests.providers import TEST_PROVIDERS


def use(config, email=None, sms=None):
    if email:
        config.email_provider = email
    if sms:
        config.sms_provider = sms
    config.save()


def test_console_is_the_default_provider(db, customer, template, capsys):
    message = send(to=customer, template_key="receipt", context={"ref": "R1"})

    assert message.provider == "console"
    assert message.status == "sent"
    assert message.provider_message_id in capsys.readouterr().out


def test_console_prints_an_email(comm_config, customer, template, capsys):
    use(comm_config, email="console")

    message = send(to=customer, template_key="receipt", context={"ref": "R1"})

    out = capsys.readouterr().out
    assert message.provider_message_id.startswith("console-")
    assert f"EMAIL {message.provider_message_id}" in out
    assert "From: shop@example.com" in out
    assert "To: john@example.com" in out
    assert "Subject: Receipt R1" in out
    assert "Thanks for order R1." in out
    assert "[HTML]\n<p>Thanks for order <b>R1</b>.</p>" in out
    assert out.index("Thanks for order R1.") < out.index("[HTML]")


def test_console_prints_an_sms(comm_config, customer, template, capsys):
    use(comm_config, sms="console")

    message = send(to=customer, template_key="receipt", context={"ref": "R2"}, channel="sms")

    out = capsys.readouterr().out
    assert f"SMS {message.provider_message_id}" in out
    assert "From: +15005550006" in out
    assert "To: +447911123456" in out
    assert "Order R2 received." in out
    assert "Subject:" not in out
    assert "[HTML]" not in out


def test_memory_keeps_messages_until_cleared(comm_config, customer, template):
    first = send(to=customer, template_key="receipt", context={"ref": "R1"})
    second = send(to=customer, template_key="receipt", context={"ref": "R2"}, channel="sms")

    assert memory.messages == [first, second]
    assert [m.channel for m in memory.messages] == ["email", "sms"]
    assert memory.messages[1].body_text == "Order R2 received."
    assert first.provider == "memory"
    assert first.provider_message_id.startswith("memory-")
    assert first.provider_message_id != second.provider_message_id

    memory.clear()
    assert memory.messages == []


@pytest.mark.parametrize(
    ("email", "sms", "channel", "match"),
    [
        ("nosuch", None, "email", "Unknown provider 'nosuch'"),
        (None, "nosuch", "sms", "Unknown provider 'nosuch'"),
        (None, "django", "sms", "cannot send sms"),
        (None, "email-only", "sms", "cannot send sms"),
        ("broken", None, "email", "cannot be imported"),
    ],
)
def test_unusable_provider_is_a_configuration_error(
    comm_config, customer, template, settings, email, sms, channel, match
):
    settings.COMMUNICATION = {
        "PROVIDERS": {**TEST_PROVIDERS, "broken": "tests.providers.NoSuchProvider"}
    }
    use(comm_config, email=email, sms=sms)

    with pytest.raises(ConfigurationError, match=match) as info:
        send(to=customer, template_key="receipt", channel=channel)

    assert isinstance(info.value, CommunicationError)
    assert info.value.permanent is False
    assert not Message.objects.exists()
    assert memory.messages == []


def test_registered_provider_is_used(comm_config, customer, template, settings):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    use(comm_config, email="email-only")

    message = send(to=customer, template_key="receipt")

    assert message.provider == "email-only"
    assert message.provider_message_id == "email-only-1"
    assert Message.objects.get().status == "sent"


@pytest.mark.parametrize(
    ("email", "sms", "bad_fields"),
    [
        ("nosuch", "memory", {"email_provider"}),
        ("memory", "nosuch", {"sms_provider"}),
        ("console", "django", {"sms_provider"}),
        ("nosuch", "email-only", {"email_provider", "sms_provider"}),
    ],
)
def test_settings_validation_rejects_unusable_providers(db, settings, email, sms, bad_fields):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    config = CommunicationSettings.get_solo()
    config.email_provider = email
    config.sms_provider = sms

    form = CommunicationSettingsForm(data=model_to_dict(config), instance=config)
    assert not form.is_valid()
    assert set(form.errors) == bad_fields


@pytest.mark.parametrize(
    ("email", "sms"),
    [("console", "console"), ("memory", "memory"), ("django", "memory"), ("email-only", "console")],
)
def test_settings_validation_accepts_usable_providers(db, settings, email, sms):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    config = CommunicationSettings.get_solo()
    config.email_provider = email
    config.sms_provider = sms

    form = CommunicationSettingsForm(data=model_to_dict(config), instance=config)
    assert form.is_valid(), form.errors
