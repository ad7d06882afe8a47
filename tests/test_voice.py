"""The voice channel through send(): routing, the phone as recipient, the script and keypad
choices from the template, opt-outs per channel, the console and memory providers."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

from django_communication import send
from django_communication.exceptions import (
    InvalidRecipientError,
    RecipientOptedOutError,
    TemplateRenderError,
)
from django_communication.models import Message, MessageTemplate
from django_communication.optout import opt_out
from django_communication.providers import memory
from django_communication.providers.console import ConsoleProvider
from django_communication.rendering import choices_error

SCRIPT = "Hello {{ name }}. Your appointment is tomorrow at 10. Press 1 to confirm, 2 to cancel."


@pytest.fixture
def sms_and_voice_reminder(db):
    return MessageTemplate.objects.create(
        key="reminder-call",
        name="Reminder call",
        message_type="reminder",
        sms_body="Reminder for {{ name }}",
        voice_body=SCRIPT,
        voice_choices={"1": "confirm", "2": "cancel"},
        sample_context={"name": "Ada"},
    )


def test_a_voice_message_says_the_rendered_script_to_the_e164_phone(
    comm_config, customer, booking, sms_and_voice_reminder
):
    comm_config.voice_caller_id = "+15005550001"
    comm_config.save()
    message = send(
        to=customer,
        template_key="reminder-call",
        context={"name": "John"},
        channel="voice",
        related_object=booking,
    )
    assert [m.pk for m in memory.messages] == [message.pk]
    message.refresh_from_db()
    assert (message.channel, message.status, message.provider) == ("voice", "sent", "memory")
    assert message.to_address == "+447911123456"  # "+44 7911 123456" cleaned to E.164
    assert message.from_address == "+15005550001"
    assert message.body_text.startswith("Hello John. Your appointment")
    assert message.choices == {"1": "confirm", "2": "cancel"}
    assert message.related_object == booking


def test_without_a_caller_id_calls_come_from_the_sms_number(
    comm_config, customer, sms_and_voice_reminder
):
    message = send(to=customer, template_key="reminder-call", channel="voice")
    assert message.from_address == comm_config.sms_origination_number


def test_routing_sends_a_message_type_by_voice(
    comm_config, customer, sms_and_voice_reminder, settings
):
    settings.COMMUNICATION = {"ROUTING": {"reminder": "voice"}}
    message = send(to=customer, template_key="reminder-call", context={"name": "J"})
    assert message.channel == "voice"
    # The defaults are unchanged: without the routing entry a reminder is an SMS.
    settings.COMMUNICATION = {}
    assert send(to=customer, template_key="reminder-call", context={"name": "J"}).channel == "sms"


def test_an_invalid_phone_is_refused_naming_the_channel(comm_config, sms_and_voice_reminder):
    with pytest.raises(InvalidRecipientError, match="Invalid voice phone number '12'"):
        send(to="12", template_key="reminder-call", channel="voice")
    assert not Message.objects.exists()


def test_a_template_without_voice_body_cannot_call(comm_config, customer, sms_and_voice_reminder):
    sms_and_voice_reminder.voice_body = ""
    sms_and_voice_reminder.save()
    with pytest.raises(TemplateRenderError, match="voice from template 'reminder-call'"):
        send(to=customer, template_key="reminder-call", channel="voice")
    assert not memory.messages


def test_an_ad_hoc_call_has_no_choices(comm_config, customer):
    message = send(to=customer, channel="voice", body_text="The shop closes early today.")
    assert (message.body_text, message.choices) == ("The shop closes early today.", {})


def test_opting_out_of_voice_reminders_leaves_sms_reminders(
    comm_config, customer, sms_and_voice_reminder
):
    opt_out("+447911123456", "voice", "reminder")
    with pytest.raises(RecipientOptedOutError):
        send(to=customer, template_key="reminder-call", context={"name": "J"}, channel="voice")
    sms = send(to=customer, template_key="reminder-call", context={"name": "J"}, channel="sms")
    assert sms.status == "sent"
    assert [m.channel for m in memory.messages] == ["sms"]


def test_the_console_prints_the_script_and_the_choices(
    comm_config, customer, sms_and_voice_reminder
):
    comm_config.voice_provider = "console"
    comm_config.save()
    stream = io.StringIO()
    ConsoleProvider.stream = stream
    try:
        send(to=customer, template_key="reminder-call", context={"name": "Ada"}, channel="voice")
    finally:
        ConsoleProvider.stream = None
    out = stream.getvalue()
    assert "VOICE console-" in out
    assert "To: +447911123456" in out
    assert "Hello Ada. Your appointment is tomorrow at 10." in out
    assert "Keypad choices:\n  1: confirm\n  2: cancel\n" in out


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"1": "confirm", "#": "repeat"}, None),
        ({}, None),
        (["confirm"], "must be a JSON object"),
        ({"12": "confirm"}, "'12' is not one key"),
        ({"1": ""}, "must be a text of 1 to 50"),
        ({"1": 3}, "must be a text of 1 to 50"),
    ],
)
def test_keypad_choices_are_one_key_each_with_a_label(value, error):
    found = choices_error(value)
    assert (found is None) if error is None else (error in found)


def test_admin_preview_shows_what_will_be_said(admin_client, sms_and_voice_reminder):
    url = reverse(
        "admin:django_communication_messagetemplate_change", args=[sms_and_voice_reminder.pk]
    )
    page = admin_client.get(url).content.decode()
    assert 'data-field="voice_body"' in page
    assert "Hello Ada. Your appointment is tomorrow at 10." in page
    assert "1: confirm" in page and "2: cancel" in page


def test_admin_refuses_malformed_keypad_choices(admin_client, sms_and_voice_reminder):
    url = reverse(
        "admin:django_communication_messagetemplate_change", args=[sms_and_voice_reminder.pk]
    )
    data = {
        "key": sms_and_voice_reminder.key,
        "name": sms_and_voice_reminder.name,
        "message_type": "reminder",
        "is_active": "on",
        "voice_body": SCRIPT,
        "voice_choices": '{"10": "confirm"}',
        "sample_context": "{}",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "voice_choices" in response.context["adminform"].form.errors
    sms_and_voice_reminder.refresh_from_db()
    assert sms_and_voice_reminder.voice_choices == {"1": "confirm", "2": "cancel"}


def test_record_reply_plays_the_callee_with_the_memory_provider(
    admin_client, comm_config, customer, booking, sms_and_voice_reminder
):
    from django_communication.exceptions import InvalidArgumentError
    from django_communication.replies import record_reply

    call = send(
        to=customer,
        template_key="reminder-call",
        context={"name": "J"},
        channel="voice",
        related_object=booking,
    )
    with pytest.raises(InvalidArgumentError, match="'5' is not a keypad choice"):
        record_reply(call, "5")
    reply = record_reply(call, "2")
    assert (reply.body_text, reply.in_reply_to, reply.related_object) == ("cancel", call, booking)
    assert record_reply(call, "1") is None  # one reply per call

    page = admin_client.get(
        reverse("admin:django_communication_message_change", args=[call.pk])
    ).content.decode()
    reply_url = reverse("admin:django_communication_message_change", args=[reply.pk])
    assert f'<a href="{reply_url}">cancel</a>' in page
