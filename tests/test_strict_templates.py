"""Strict templates: a variable the context lacks fails the send instead of vanishing."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from django_communication import TemplateRenderError, send
from django_communication.checks import check_settings
from django_communication.models import Message
from django_communication.providers import memory
from outbox import emit
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain


@pytest.fixture
def welcome(make_template, db):
    return make_template(
        "welcome",
        name="Welcome",
        email_subject="Welcome",
        email_body_text=(
            "Hello {{ name|upper }}, thanks for joining."
            "{% if coupon %} Use {{ coupon }}.{% endif %}"
            "{% for line in lines %}{{ line }}{% endfor %}"
        ),
        sms_body="Hi {{ recipient.nickname }}",
        sample_context={"coupon": "X1"},
    )


def test_lenient_by_default_a_missing_variable_renders_empty(comm_config, welcome, customer):
    message = send(to=customer, template_key="welcome", context={})
    assert message.body_text == "Hello , thanks for joining."


def test_strict_setting_raises_naming_template_field_and_variable(
    comm_config, welcome, customer, settings
):
    settings.COMMUNICATION = {"STRICT_TEMPLATES": True}
    with pytest.raises(TemplateRenderError) as caught:
        send(to=customer, template_key="welcome", context={})
    assert caught.value.variable == "name"
    text = str(caught.value)
    assert "'welcome'" in text and "'email_body_text'" in text and "'name'" in text
    assert not Message.objects.exists() and memory.messages == []

    # {% if %} and {% for %} may test what is absent; everything output must be there.
    message = send(to=customer, template_key="welcome", context={"name": "Jo"})
    assert message.body_text == "Hello JO, thanks for joining."

    # An attribute the object lacks is a missing variable too, named by its whole path.
    with pytest.raises(TemplateRenderError, match=r"'sms_body'.*'recipient\.nickname'"):
        send(to=customer, template_key="welcome", channel="sms", context={"name": "Jo"})


def test_the_setting_is_read_live(comm_config, welcome, customer, settings):
    send(to=customer, template_key="welcome", context={})  # compiled and cached, lenient
    settings.COMMUNICATION = {"STRICT_TEMPLATES": True}
    with pytest.raises(TemplateRenderError):
        send(to=customer, template_key="welcome", context={})


def test_a_template_can_be_strict_on_its_own(comm_config, welcome, customer):
    welcome.strict = True
    welcome.save()
    with pytest.raises(TemplateRenderError, match="'name'"):
        send(to=customer, template_key="welcome", context={})


def test_strict_event_goes_dead_with_the_reason(comm_config, welcome, customer, settings):
    settings.COMMUNICATION = {"STRICT_TEMPLATES": True}
    settings.OUTBOX = {
        "RULES": {"joined": {"template_key": "welcome", "channel": "email"}},
        "WAKE_ON_COMMIT": False,
    }
    event = emit("joined", to=customer, context={})
    assert drain().dead == 1
    row = OutboxEvent.objects.get(pk=event.pk)
    assert row.status == OutboxStatus.DEAD and row.attempts == 1
    assert "'welcome'" in row.last_error and "'name'" in row.last_error
    assert memory.messages == []


@pytest.mark.parametrize("strict", [False, True])
def test_preview_lists_what_the_sample_context_lacks(admin_client, welcome, settings, strict):
    settings.COMMUNICATION = {"STRICT_TEMPLATES": strict}
    url = reverse("admin:django_communication_messagetemplate_change", args=[welcome.pk])
    content = admin_client.get(url).content.decode()
    # coupon is in the sample context; lines is only looped over.
    assert "Not in the sample context: name</p>" in content
    assert "Not in the sample context: recipient.nickname</p>" in content
    assert content.count("comm-preview-missing") == 2
    if strict:
        assert "which the context does not have" in content


def test_check_rejects_a_non_bool(settings):
    settings.COMMUNICATION = {"STRICT_TEMPLATES": "yes"}
    assert [error.id for error in check_settings()] == ["communication.E015"]
    settings.COMMUNICATION = {"STRICT_TEMPLATES": True}
    assert check_settings() == []
    call_command("check")
