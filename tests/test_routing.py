"""Channel choice: explicit channel > template message type via ROUTING > default_channel."""

from __future__ import annotations

import pytest

from django_communication import CommunicationError, InvalidArgumentError, send
from django_communication.models import Message, MessageTemplate
from django_communication.providers import memory


@pytest.fixture
def template_for(make_template):
    """``template_for(key, message_type)``: a template with content for both channels."""

    def make(key: str, message_type: str) -> MessageTemplate:
        return make_template(
            key,
            message_type=message_type,
            email_subject="Subject",
            email_body_text="Email body",
            sms_body="SMS body",
        )

    return make


@pytest.mark.parametrize(
    ("message_type", "channel"),
    [
        ("transactional", "email"),
        ("reminder", "sms"),
        ("alert", "sms"),
        ("announcement", "email"),
    ],
)
def test_template_message_type_routes_by_default(
    template_for, comm_config, customer, message_type, channel
):
    template_for("t", message_type)

    message = send(to=customer, template_key="t")

    assert message.channel == channel
    assert message.message_type == message_type
    assert message.body_text == ("SMS body" if channel == "sms" else "Email body")


@pytest.mark.parametrize(("message_type", "channel"), [("reminder", "email"), ("alert", "email")])
def test_explicit_channel_beats_routing(template_for, comm_config, customer, message_type, channel):
    template_for("t", message_type)

    message = send(to=customer, template_key="t", channel=channel)

    assert message.channel == channel
    assert message.to_address == "john@example.com"


def test_explicit_channel_sms_for_transactional_template(template_for, comm_config, customer):
    template_for("t", "transactional")

    assert send(to=customer, template_key="t", channel="sms").channel == "sms"


def test_message_type_argument_overrides_the_template_type(template_for, comm_config, customer):
    template_for("t", "transactional")

    message = send(to=customer, template_key="t", message_type="reminder")

    assert message.channel == "sms"
    assert message.message_type == "reminder"


def test_routing_setting_overrides_only_the_named_types(
    template_for, comm_config, customer, settings
):
    settings.COMMUNICATION = {"ROUTING": {"reminder": "email", "transactional": "sms"}}
    template_for("reminder", "reminder")
    template_for("transactional", "transactional")
    template_for("alert", "alert")

    assert send(to=customer, template_key="reminder").channel == "email"
    assert send(to=customer, template_key="transactional").channel == "sms"
    assert send(to=customer, template_key="alert").channel == "sms"


def test_default_channel_applies_without_a_message_type(comm_config, customer):
    assert send(to=customer, subject="S", body_text="B").channel == "email"

    comm_config.default_channel = "sms"
    comm_config.save()

    message = send(to=customer, body_text="B")
    assert message.channel == "sms"
    assert message.to_address == "+447911123456"


def test_ad_hoc_message_type_routes(comm_config, customer):
    comm_config.default_channel = "email"
    comm_config.save()

    message = send(to=customer, body_text="Reminder!", message_type="reminder")

    assert message.channel == "sms"
    assert message.message_type == "reminder"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channel": "fax"},
        {"channel": "EMAIL"},
        {"message_type": "spam"},
        {"message_type": "reminder", "channel": "pigeon"},
    ],
)
def test_unknown_channel_or_message_type(template_for, comm_config, customer, kwargs):
    template_for("t", "transactional")

    with pytest.raises(InvalidArgumentError) as info:
        send(to=customer, template_key="t", **kwargs)

    assert isinstance(info.value, CommunicationError)
    bad = kwargs.get("channel") if "channel" in kwargs else kwargs["message_type"]
    assert repr(bad) in str(info.value)
    assert not Message.objects.exists()
    assert memory.messages == []


def test_routing_to_an_unknown_channel_fails_before_writing(
    template_for, comm_config, customer, settings
):
    settings.COMMUNICATION = {"ROUTING": {"reminder": "fax"}}
    template_for("t", "reminder")

    with pytest.raises(CommunicationError, match="fax"):
        send(to=customer, template_key="t")
    assert not Message.objects.exists()
