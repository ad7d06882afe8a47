"""Templates: Django syntax, escaping, the compiled-template cache, errors and overrides."""

from __future__ import annotations

import pytest
from django import template as django_template
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from django_communication import (
    CommunicationError,
    InvalidArgumentError,
    TemplateNotFoundError,
    TemplateRenderError,
    send,
)
from django_communication.admin.templates import MessageTemplateForm
from django_communication.models import CommunicationSettings, Message, MessageTemplate
from django_communication.providers import memory
from tests.helpers import assert_nothing_sent

# This module doubles as a template library for test_project_template_libraries_load.
register = django_template.Library()


@register.filter
def shout(value):
    return f"{value}!".upper()


@pytest.fixture
def greeting(make_template, db):
    return make_template(
        "greeting",
        name="Greeting",
        email_subject="Hi {{ name }}",
        email_body_text="Text: {{ name }}",
        email_body_html="<p>{{ name }}</p>",
        sms_body="SMS: {{ name }}",
    )


def test_django_template_syntax(make_template, comm_config, customer):
    make_template(
        "order",
        name="Order",
        email_subject="Order {{ order.ref|upper }}",
        email_body_text=(
            "{% for item in order.items %}{{ forloop.counter }}. {{ item }}\n{% endfor %}"
            "{% if order.paid %}Paid{% else %}Unpaid{% endif %} - {{ recipient.name }}"
        ),
    )

    message = send(
        to=customer,
        template_key="order",
        context={"order": {"ref": "ab12", "items": ["Tea", "Cake"], "paid": True}},
    )

    assert message.subject == "Order AB12"
    assert message.body_text == "1. Tea\n2. Cake\nPaid - John"
    assert message.body_html == ""


def test_html_is_autoescaped_and_text_is_not(comm_config, customer, greeting):
    name = "<b>Tom & Jerry's</b>"

    email = send(to=customer, template_key="greeting", context={"name": name})
    sms = send(to=customer, template_key="greeting", context={"name": name}, channel="sms")

    assert email.body_html == "<p>&lt;b&gt;Tom &amp; Jerry&#x27;s&lt;/b&gt;</p>"
    assert email.body_text == f"Text: {name}"
    assert email.subject == f"Hi {name}"
    assert sms.body_text == f"SMS: {name}"


def test_project_template_libraries_load(make_template, comm_config, customer, settings):
    make_template("loud", name="Loud", email_subject="S", email_body_text="{{ name|shout }}")
    make_template("plain", name="Plain", email_subject="S", email_body_text="B")
    send(to=customer, template_key="plain")  # the engine is in use before TEMPLATES changes

    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"builtins": ["tests.test_rendering"]},
        }
    ]

    assert send(to=customer, template_key="loud", context={"name": "hey"}).body_text == "HEY!"


def test_warm_send_reads_neither_templates_nor_settings(comm_config, customer, greeting):
    send(to=customer, template_key="greeting", context={"name": "A"}, related_object=customer)

    with CaptureQueriesContext(connection) as queries:
        message = send(
            to=customer, template_key="greeting", context={"name": "B"}, related_object=customer
        )

    assert message.status == "sent"
    sql = [query["sql"].lower() for query in queries.captured_queries]
    assert any("insert into" in q and Message._meta.db_table in q for q in sql)
    for table in (MessageTemplate._meta.db_table, CommunicationSettings._meta.db_table):
        assert not [q for q in sql if q.lstrip().startswith("select") and table in q], sql


def test_saving_a_template_drops_its_cached_compilation(comm_config, customer, greeting):
    assert send(to=customer, template_key="greeting", context={"name": "A"}).subject == "Hi A"

    greeting.email_subject = "Hello again {{ name }}"
    greeting.save()

    assert send(to=customer, template_key="greeting", context={"name": "A"}).subject == (
        "Hello again A"
    )


@pytest.mark.parametrize("change", ["delete", "deactivate"])
def test_deleted_or_deactivated_template_is_not_found(comm_config, customer, greeting, change):
    send(to=customer, template_key="greeting")
    if change == "delete":
        greeting.delete()
    else:
        greeting.is_active = False
        greeting.save()
    Message.objects.all().delete()
    memory.clear()

    with pytest.raises(TemplateNotFoundError, match="greeting"):
        send(to=customer, template_key="greeting")
    assert_nothing_sent()


def test_unsignalled_change_is_seen_after_cache_seconds(
    comm_config, customer, greeting, monkeypatch
):
    from django_communication import cache

    assert send(to=customer, template_key="greeting", context={"name": "A"}).subject == "Hi A"
    # Another process changed the row: no signal reaches this one.
    MessageTemplate.objects.filter(pk=greeting.pk).update(email_subject="Changed {{ name }}")
    assert send(to=customer, template_key="greeting", context={"name": "A"}).subject == "Hi A"

    now = cache.time.monotonic()
    monkeypatch.setattr(cache.time, "monotonic", lambda: now + 61)

    assert send(to=customer, template_key="greeting", context={"name": "A"}).subject == (
        "Changed A"
    )


def test_missing_template(comm_config, customer):
    with pytest.raises(TemplateNotFoundError, match="nope") as info:
        send(to=customer, template_key="nope")
    assert isinstance(info.value, CommunicationError)
    assert_nothing_sent()


@pytest.mark.parametrize(
    ("field", "source"),
    [
        ("email_subject", "Hi {% endif %}"),
        ("email_body_text", "{% if name %}unclosed"),
        ("email_body_html", "{% nosuchtag %}"),
        ("sms_body", "{{ name|nosuchfilter }}"),
    ],
)
def test_syntax_error_names_template_and_field(comm_config, customer, greeting, field, source):
    setattr(greeting, field, source)
    greeting.save()
    channel = "sms" if field == "sms_body" else "email"

    with pytest.raises(TemplateRenderError) as info:
        send(to=customer, template_key="greeting", channel=channel)

    assert "'greeting'" in str(info.value)
    assert repr(field) in str(info.value)
    assert_nothing_sent()

    form = MessageTemplateForm(data=model_to_dict(greeting), instance=greeting)
    assert not form.is_valid()
    assert set(form.errors) == {field}


class Exploding:
    @property
    def total(self):
        raise ValueError("no total")


@pytest.mark.parametrize(
    ("field", "source"),
    [
        ("email_body_text", "Total: {{ order.total }}"),
        ("email_body_html", "{% include 'does/not/exist.html' %}"),
    ],
)
def test_render_error_names_template_and_field(comm_config, customer, greeting, field, source):
    setattr(greeting, field, source)
    greeting.save()

    with pytest.raises(TemplateRenderError) as info:
        send(to=customer, template_key="greeting", context={"order": Exploding()})

    assert isinstance(info.value, CommunicationError)
    assert "'greeting'" in str(info.value)
    assert repr(field) in str(info.value)
    assert_nothing_sent()


def test_template_without_content_for_the_channel(make_template, comm_config, customer):
    make_template("email-only", name="E", email_subject="S", email_body_text="B")
    make_template("no-subject", name="N", email_body_text="B", sms_body="B")

    with pytest.raises(TemplateRenderError, match="email-only"):
        send(to=customer, template_key="email-only", channel="sms")
    with pytest.raises(TemplateRenderError, match="subject"):
        send(to=customer, template_key="no-subject")
    assert_nothing_sent()


def test_html_only_email_is_fine(make_template, comm_config, customer):
    make_template("html", name="H", email_subject="S", email_body_html="<p/>")

    message = send(to=customer, template_key="html")

    assert message.body_html == "<p/>"
    assert message.body_text == ""


def test_overrides_replace_rendered_fields(comm_config, customer, greeting):
    message = send(
        to=customer,
        template_key="greeting",
        context={"name": "A"},
        subject="Custom subject",
        body_html="<p>raw & {{ unrendered }}</p>",
    )

    assert message.subject == "Custom subject"
    assert message.body_html == "<p>raw & {{ unrendered }}</p>"
    assert message.body_text == "Text: A"
    assert message.template == greeting

    message = send(to=customer, template_key="greeting", body_text="Own text", channel="sms")
    assert message.body_text == "Own text"


def test_empty_override_clears_a_field(comm_config, customer, greeting):
    message = send(to=customer, template_key="greeting", context={"name": "A"}, body_html="")

    assert message.body_html == ""
    assert message.body_text == "Text: A"


def test_subject_line_breaks_are_flattened(comm_config, customer, greeting):
    greeting.email_subject = "Hi\n{{ name }}\r\n  again"
    greeting.save()

    message = send(to=customer, template_key="greeting", context={"name": "A\rB\nC"})
    assert message.subject == "Hi A B C again"

    message = send(to=customer, template_key="greeting", subject="Line one\r\nBcc: x@example.com")
    assert message.subject == "Line one Bcc: x@example.com"
    assert "\n" not in message.subject


def test_ad_hoc_email_without_subject_is_an_invalid_argument(comm_config, customer):
    with pytest.raises(InvalidArgumentError, match="subject"):
        send(to=customer, body_text="B", subject="\n")
    assert_nothing_sent()


def test_syntax_error_in_sms_body_does_not_block_email(make_template, comm_config, customer):
    from django_communication import send

    make_template(
        "half-broken",
        name="Half broken",
        email_subject="Hi",
        email_body_text="Hello",
        sms_body="{% if %}",
    )
    assert send(to=customer, template_key="half-broken", channel="email").status == "sent"
    with pytest.raises(TemplateRenderError, match="sms_body"):
        send(to=customer, template_key="half-broken", channel="sms")
