"""Languages through the outbox (emit(language=), rule languages, the recipient's), the admin
(variants edited inline with their previews, languages in the list) and the database checks."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.urls import reverse

from django_communication.models import Message, MessageTemplate, MessageTemplateVariant
from outbox import InvalidEventError, emit
from outbox.models import OutboxEvent
from outbox.relay import drain
from tests.testapp.models import Customer


@pytest.fixture
def greeting(db):
    row = MessageTemplate.objects.create(
        key="greeting",
        name="Greeting",
        email_subject="Hello {{ name }}",
        email_body_text="Hello",
        email_body_html="<p>Hello</p>",
        sample_context={"name": "Ann", "day": "2026-12-02"},
    )
    MessageTemplateVariant.objects.create(
        template=row,
        language="fr",
        email_subject="Bonjour {{ name }}",
        email_body_text="Bonjour",
        email_body_html="<p>Bonjour</p>",
    )
    MessageTemplateVariant.objects.create(
        template=row, language="de", email_subject="Hallo {{ name }}", email_body_text="Hallo"
    )
    return row


def relay_messages(settings, rule: dict, **emit_kwargs) -> list[Message]:
    settings.OUTBOX = {"RULES": {"greet": rule}, "WAKE_ON_COMMIT": False}
    emit("greet", context={"name": "Ann"}, **emit_kwargs)
    drain()
    return list(Message.objects.order_by("created_at"))


@pytest.mark.django_db(transaction=True)
def test_event_language_renders_the_message_in_it(comm_config, greeting, customer, settings):
    [message] = relay_messages(settings, {"template_key": "greeting"}, to=customer, language="fr")
    assert (message.subject, message.language) == ("Bonjour Ann", "fr")


@pytest.mark.django_db(transaction=True)
def test_rule_language_comes_before_the_event_language(comm_config, greeting, customer, settings):
    rule = {"template_key": "greeting", "language": "de"}
    [message] = relay_messages(settings, rule, to=customer, language="fr")
    assert (message.subject, message.language) == ("Hallo Ann", "de")


@pytest.mark.django_db(transaction=True)
def test_without_one_the_recipients_language_is_used(comm_config, greeting, settings):
    customer = Customer.objects.create(name="Ann", email="ann@example.com", language="fr")
    [message] = relay_messages(settings, {"template_key": "greeting"}, to=customer)
    assert (message.subject, message.language) == ("Bonjour Ann", "fr")


def test_emit_refuses_an_unknown_language_before_writing(db, customer, settings):
    settings.OUTBOX = {"RULES": {"greet": {"template_key": "greeting"}}}
    with pytest.raises(InvalidEventError, match=r"emit\(language='klingon'\)"):
        emit("greet", to=customer, language="klingon")
    assert OutboxEvent.objects.count() == 0


def test_emit_stores_the_listed_code(db, customer, settings):
    settings.OUTBOX = {"RULES": {"greet": {"template_key": "greeting"}}, "WAKE_ON_COMMIT": False}
    event = emit("greet", to=customer, language="pt_BR")
    assert OutboxEvent.objects.get(pk=event.pk).language == "pt-br"


# ------------------------------------------------------------------------------ checks


def check_ids() -> list[str]:
    """The template checks' ids (the outbox's database checks are theirs to test)."""
    found = run_checks(tags=["database"], databases=["default"])
    return [message.id for message in found if message.id.startswith("communication.")]


def test_variant_lacking_a_field_of_the_default_warns(greeting):
    # The German variant has no HTML body; the French one has everything.
    warnings = [m for m in run_checks(databases=["default"]) if m.id == "communication.W003"]
    assert len(warnings) == 1
    assert "'greeting' variant 'de' lacks email_body_html" in warnings[0].msg


def test_variant_in_an_unlisted_language_warns(greeting, settings):
    settings.LANGUAGES = [("en", "English"), ("fr", "French")]
    assert check_ids() == ["communication.W003", "communication.W004"]


def test_complete_variants_pass_and_the_check_runs_only_with_a_database(greeting):
    greeting.variants.filter(language="de").delete()
    assert check_ids() == []
    MessageTemplateVariant.objects.filter(language="fr").update(email_body_html="")
    assert check_ids() == ["communication.W003"]
    assert "communication.W003" not in [m.id for m in run_checks()]  # no --database: not run


def test_check_command_with_database_reports_the_warning(greeting, capsys):
    call_command("check", "--database", "default")
    assert "communication.W003" in capsys.readouterr().err


# ------------------------------------------------------------------------------- admin


def test_changelist_shows_the_languages_of_each_key(admin_client, greeting):
    MessageTemplate.objects.create(key="plain", name="Plain", sms_body="x")
    response = admin_client.get(reverse("admin:django_communication_messagetemplate_changelist"))
    content = response.content.decode()
    assert '<td class="field-languages">default, de, fr</td>' in content
    assert '<td class="field-languages">default</td>' in content


def test_change_page_edits_variants_inline_with_their_previews(admin_client, greeting):
    url = reverse("admin:django_communication_messagetemplate_change", args=[greeting.pk])
    response = admin_client.get(url)
    content = response.content.decode()
    assert response.status_code == 200
    assert 'name="variants-0-language"' in content
    assert "Bonjour Ann" in content  # the French variant's preview
    assert "Hallo Ann" in content


def post_data(template: MessageTemplate, variants: list[dict]) -> dict:
    data = {
        "key": template.key,
        "name": template.name,
        "message_type": template.message_type,
        "is_active": "on",
        "email_subject": template.email_subject,
        "email_body_text": template.email_body_text,
        "email_body_html": template.email_body_html,
        "sms_body": template.sms_body,
        "sample_context": '{"name": "Ann"}',
        "variants-TOTAL_FORMS": str(len(variants)),
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
    }
    for index, variant in enumerate(variants):
        for name, value in variant.items():
            data[f"variants-{index}-{name}"] = value
    return data


def test_adding_a_variant_in_the_admin(admin_client, db):
    template = MessageTemplate.objects.create(key="note", name="Note", email_subject="Note")
    url = reverse("admin:django_communication_messagetemplate_change", args=[template.pk])
    variant = {"language": "es", "email_subject": "Nota", "email_body_text": "Hola"}
    response = admin_client.post(url, post_data(template, [variant]))
    assert response.status_code == 302
    assert template.variants.get().email_subject == "Nota"


@pytest.mark.parametrize(
    ("variant", "error"),
    [
        ({"language": "klingon", "email_subject": "x"}, "Select a valid choice"),
        ({"language": "es", "email_subject": "{% if %}"}, "does not compile"),
    ],
)
def test_variant_form_refuses_bad_input(admin_client, db, variant, error):
    template = MessageTemplate.objects.create(key="note", name="Note", email_subject="Note")
    url = reverse("admin:django_communication_messagetemplate_change", args=[template.pk])
    response = admin_client.post(url, post_data(template, [variant]))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not template.variants.exists()
