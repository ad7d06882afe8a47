"""Messages in the recipient's language: variant choice and fallback, rendering under the
language ({% translate %} with the test app's French catalog, date and number formats)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from django_communication import InvalidArgumentError, send
from django_communication.models import Message, MessageTemplate, MessageTemplateVariant

LOCALE = Path(__file__).parent / "testapp" / "locale" / "fr" / "LC_MESSAGES"


@dataclass
class Person:
    email: str = "ana@example.com"
    phone: str = "+44 7911 123456"
    language: str | None = None


@pytest.fixture
def welcome(db):
    row = MessageTemplate.objects.create(
        key="welcome",
        name="Welcome",
        email_subject="Welcome {{ name }}",
        email_body_text="Hello {{ name }}",
        sms_body="Hi {{ name }}",
    )
    for language, subject, body in (
        ("pt", "Bem-vindo {{ name }}", "Olá {{ name }}"),
        ("fr", "Bienvenue {{ name }}", "Bonjour {{ name }}"),
    ):
        MessageTemplateVariant.objects.create(
            template=row, language=language, email_subject=subject, email_body_text=body
        )
    return row


def welcome_to(to, **kwargs) -> Message:
    return send(to=to, template_key="welcome", context={"name": "Ana"}, **kwargs)


def test_explicit_language_picks_its_variant_and_is_recorded(comm_config, welcome):
    message = welcome_to(Person(), language="fr")

    assert (message.subject, message.body_text) == ("Bienvenue Ana", "Bonjour Ana")
    assert Message.objects.get(pk=message.pk).language == "fr"


def test_recipient_language_attribute_is_used_unless_a_language_is_asked_for(comm_config, welcome):
    assert welcome_to(Person(language="fr")).subject == "Bienvenue Ana"
    assert welcome_to(Person(language="fr"), language="pt").subject == "Bem-vindo Ana"


def test_regional_language_falls_back_to_its_generic_variant(comm_config, welcome):
    message = welcome_to(Person(language="pt-BR"))

    assert message.subject == "Bem-vindo Ana"
    assert message.language == "pt-br"  # listed in LANGUAGES: rendered (dates...) as pt-br


def test_regional_language_not_listed_becomes_its_generic_one(comm_config, welcome, settings):
    settings.LANGUAGES = [("en", "English"), ("pt", "Portuguese")]

    message = welcome_to(Person(), language="pt_BR")

    assert (message.subject, message.language) == ("Bem-vindo Ana", "pt")


def test_language_without_a_variant_gets_the_default_variant(comm_config, welcome):
    message = welcome_to(Person(language="de"))

    assert (message.subject, message.body_text) == ("Welcome Ana", "Hello Ana")
    assert message.language == "de"


def test_settings_language_code_is_the_default(comm_config, welcome, settings):
    settings.LANGUAGE_CODE = "fr"
    assert welcome_to(Person()).subject == "Bienvenue Ana"
    assert welcome_to("plain@example.com").language == "fr"


def test_recipient_language_not_in_languages_is_passed_over(comm_config, welcome, settings):
    settings.LANGUAGE_CODE = "pt"
    message = welcome_to(Person(language="xx-yy"))
    assert (message.subject, message.language) == ("Bem-vindo Ana", "pt")


def test_unknown_explicit_language_is_refused_before_anything_is_written(comm_config, welcome):
    with pytest.raises(InvalidArgumentError, match=r"language='klingon' is not in settings"):
        welcome_to(Person(), language="klingon")
    assert Message.objects.count() == 0


def test_language_resolver_hook(comm_config, welcome, settings):
    settings.COMMUNICATION = {"LANGUAGE_RESOLVER": "tests.test_languages.resolve_language"}
    assert welcome_to(Person(email="ana@example.fr")).subject == "Bienvenue Ana"
    assert welcome_to(Person(email="ana@example.com", language="fr")).subject == "Welcome Ana"


def resolve_language(to) -> str | None:
    return "fr" if to.email.endswith(".fr") else None


def test_variant_without_text_for_the_channel_leaves_it_to_the_default(comm_config, welcome):
    # The French variant has email fields only: its SMS comes from the default variant.
    message = welcome_to(Person(), language="fr", channel="sms")
    assert (message.body_text, message.language) == ("Hi Ana", "fr")


def test_saving_a_variant_drops_the_cached_template(comm_config, welcome):
    assert welcome_to(Person(), language="fr").subject == "Bienvenue Ana"
    variant = welcome.variants.get(language="fr")
    variant.email_subject = "Salut {{ name }}"
    variant.save()
    assert welcome_to(Person(), language="fr").subject == "Salut Ana"
    variant.delete()
    assert welcome_to(Person(), language="fr").subject == "Welcome Ana"


def test_warm_send_in_a_language_reads_no_template(comm_config, welcome):
    welcome_to(Person(), language="fr")
    with CaptureQueriesContext(connection) as queries:
        welcome_to(Person(), language="pt")
    tables = (MessageTemplate._meta.db_table, MessageTemplateVariant._meta.db_table)
    assert not [q for q in queries.captured_queries if any(t in q["sql"] for t in tables)]


def test_the_active_language_is_restored_after_sending(comm_config, welcome):
    with translation.override("de"):
        welcome_to(Person(), language="fr")
        assert translation.get_language() == "de"


# ------------------------------------------------------------------------- rendering in it


@pytest.fixture
def translated(db):
    return MessageTemplate.objects.create(
        key="translated",
        name="Translated",
        email_subject="{% load i18n %}{% translate 'Your booking is confirmed' %}",
        email_body_text=(
            "{% load i18n %}{% blocktranslate with day=day|date %}See you on {{ day }}, "
            "{{ name }}.{% endblocktranslate %} {{ price }}"
        ),
    )


def test_translate_tags_use_the_compiled_catalog(comm_config, translated):
    context = {"day": date(2026, 12, 2), "name": "Ana", "price": Decimal("1234.50")}

    french = send(to=Person(), template_key="translated", context=context, language="fr")
    english = send(to=Person(), template_key="translated", context=context, language="en")

    assert french.subject == "Votre réservation est confirmée"
    assert french.body_text == "À bientôt le 2 décembre 2026, Ana. 1234,50"
    assert english.subject == "Your booking is confirmed"
    assert english.body_text == "See you on Dec. 2, 2026, Ana. 1234.50"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "Dec. 2, 2026"), ("de", "2. Dezember 2026"), ("pt-br", "2 de Dezembro de 2026")],
)
def test_dates_are_formatted_per_language(comm_config, db, language, expected):
    MessageTemplate.objects.create(
        key="day", name="Day", email_subject="Day", email_body_text="{{ day|date }}"
    )
    message = send(
        to=Person(), template_key="day", context={"day": date(2026, 12, 2)}, language=language
    )
    assert message.body_text == expected


def test_the_committed_catalog_is_compiled_from_its_po_file(tmp_path):
    if shutil.which("msgfmt") is None:
        pytest.skip("GNU gettext's msgfmt is not installed")
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(LOCALE / "django.po")], check=True)
    assert compiled.read_bytes() == (LOCALE / "django.mo").read_bytes()


def test_a_batch_renders_each_message_in_its_language(comm_config, welcome):
    from django_communication import SendRequest, send_many

    requests = [
        SendRequest(to=Person(), template_key="welcome", context={"name": "Ana"}, language=code)
        for code in ("fr", "fr", "en", "pt", "fr")
    ]
    with translation.override("de"):
        results = send_many(requests)
        assert translation.get_language() == "de"
    assert [m.subject for m in results] == [
        "Bienvenue Ana",
        "Bienvenue Ana",
        "Welcome Ana",
        "Bem-vindo Ana",
        "Bienvenue Ana",
    ]
    assert [m.language for m in results] == ["fr", "fr", "en", "pt", "fr"]


def test_a_call_says_its_languages_voice_body_and_offers_the_templates_choices(comm_config):
    row = MessageTemplate.objects.create(
        key="reminder",
        name="Reminder",
        voice_body="Your visit is on {{ day|date:'l' }}. Press 1 to confirm.",
        voice_choices={"1": "confirm"},
    )
    MessageTemplateVariant.objects.create(
        template=row, language="fr", voice_body="Votre visite est {{ day|date:'l' }}. Tapez 1."
    )
    message = send(
        to=Person(),
        template_key="reminder",
        channel="voice",
        context={"day": date(2026, 12, 24)},
        language="fr",
    )

    assert message.body_text == "Votre visite est jeudi. Tapez 1."
    assert (message.language, message.choices) == ("fr", {"1": "confirm"})
