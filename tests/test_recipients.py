"""Recipient addresses: attributes, plain strings, the resolver; validation and E.164."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from django_communication import ConfigurationError, InvalidRecipientError, send
from tests.helpers import assert_nothing_sent

RESOLVED = []


def work_address(to, channel):
    """A resolver reached through its dotted path."""
    RESOLVED.append((to, channel))
    return {"email": to.work_email, "sms": to.work_phone}[channel]


@pytest.fixture(autouse=True)
def _clear_resolved():
    RESOLVED.clear()


def test_addresses_come_from_email_and_phone(comm_config, customer, template):
    assert send(to=customer, template_key="receipt").to_address == "john@example.com"
    assert send(to=customer, template_key="receipt", channel="sms").to_address == "+447911123456"


def test_any_object_with_email_or_phone_will_do(comm_config, template):
    person = SimpleNamespace(email="ann@example.com", phone="+1 (415) 555-2671")

    assert send(to=person, template_key="receipt").to_address == "ann@example.com"
    assert send(to=person, template_key="receipt", channel="sms").to_address == "+14155552671"


def test_plain_strings_are_addresses(comm_config, template):
    assert send(to=" ann@example.com ", template_key="receipt").to_address == "ann@example.com"
    message = send(to="+44 20 7946 0018", template_key="receipt", channel="sms")
    assert message.to_address == "+442079460018"


@pytest.mark.parametrize(
    ("to", "channel", "reason"),
    [
        (None, "email", "No recipient"),
        (None, "sms", "No recipient"),
        (SimpleNamespace(email="", phone="+447911123456"), "email", "no email address"),
        (SimpleNamespace(email="a@example.com", phone="  "), "sms", "no sms address"),
        (SimpleNamespace(name="no address attributes"), "sms", "no sms address"),
        ("", "email", "no email address"),
        ("not-an-email", "email", "Invalid email address"),
        ("John <john@example.com>", "email", "Invalid email address"),
        ("a@example.com\nBcc: victim@example.com", "email", "Invalid email address"),
        ("john@example.com", "sms", "Invalid sms phone number 'john@example.com': it is not a"),
        ("+44 123", "sms", "'+44 123': it has too few digits for a +44 number."),
        ("+44 7911 1234567890", "sms", "the wrong number of digits for a +44 number"),
        ("07911 123456", "sms", "international format, +<country code> <number>"),
        ("07911 123456", "sms", "DEFAULT_PHONE_REGION"),
        ("+999 1234", "sms", "no country code follows its +"),
        ("+1 555 0100", "sms", "it lacks an area code"),
        ("+1 200 555 0100", "sms", "no +1 number is in use with these digits"),
    ],
)
def test_unusable_recipient_is_rejected_before_anything_is_written(
    comm_config, template, to, channel, reason
):
    with pytest.raises(InvalidRecipientError) as info:
        send(to=to, template_key="receipt", channel=channel)

    assert reason in str(info.value)
    assert channel in str(info.value)
    assert "(0)" not in str(info.value) and "(1)" not in str(info.value)  # phonenumbers' codes
    assert_nothing_sent()


def test_customer_without_phone_cannot_get_sms(comm_config, customer, template):
    customer.phone = ""
    customer.save()

    with pytest.raises(InvalidRecipientError, match="sms"):
        send(to=customer, template_key="receipt", channel="sms")
    assert_nothing_sent()


def test_default_phone_region_parses_national_numbers(comm_config, template, settings):
    settings.COMMUNICATION = {"DEFAULT_PHONE_REGION": "GB"}

    message = send(to="07911 123456", template_key="receipt", channel="sms")
    assert message.to_address == "+447911123456"
    # International numbers still win over the default region.
    message = send(to="+1 415 555 2671", template_key="receipt", channel="sms")
    assert message.to_address == "+14155552671"


def test_default_phone_region_applies_to_attributes(comm_config, template, settings):
    settings.COMMUNICATION = {"DEFAULT_PHONE_REGION": "US"}

    person = SimpleNamespace(phone="(415) 555-2671")
    assert send(to=person, template_key="receipt", channel="sms").to_address == "+14155552671"


def test_callable_resolver(comm_config, customer, template, settings):
    calls = []

    def resolver(to, channel):
        calls.append((to, channel))
        return "ops@example.com" if channel == "email" else "+1 415 555 2671"

    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": resolver}

    assert send(to=customer, template_key="receipt").to_address == "ops@example.com"
    assert send(to=customer, template_key="receipt", channel="sms").to_address == "+14155552671"
    assert calls == [(customer, "email"), (customer, "sms")]


def test_dotted_path_resolver(comm_config, template, settings):
    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": "tests.test_recipients.work_address"}
    person = SimpleNamespace(
        email="home@example.com", work_email="work@example.com", work_phone="+442079460018"
    )

    assert send(to=person, template_key="receipt").to_address == "work@example.com"
    assert send(to=person, template_key="receipt", channel="sms").to_address == "+442079460018"
    assert [(person, "email"), (person, "sms")] == RESOLVED


def test_resolver_is_not_used_for_plain_strings(comm_config, template, settings):
    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": "tests.test_recipients.work_address"}

    assert send(to="ann@example.com", template_key="receipt").to_address == "ann@example.com"
    assert RESOLVED == []


@pytest.mark.parametrize("result", [None, "", "not-a-number"])
def test_resolver_results_are_validated(comm_config, customer, template, settings, result):
    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": lambda to, channel: result}

    with pytest.raises(InvalidRecipientError, match="sms"):
        send(to=customer, template_key="receipt", channel="sms")
    assert_nothing_sent()


def test_unimportable_resolver_is_a_configuration_error(comm_config, customer, template, settings):
    settings.COMMUNICATION = {"RECIPIENT_RESOLVER": "tests.nowhere.resolve"}

    with pytest.raises(ConfigurationError, match="RECIPIENT_RESOLVER"):
        send(to=customer, template_key="receipt")
    assert_nothing_sent()
