"""System checks for settings.COMMUNICATION and the settings singleton."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_communication.checks import check_settings, check_stored_secrets
from django_communication.models import CommunicationSettings
from tests.providers import TEST_PROVIDERS


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def not_a_provider():
    """Importable, but not a provider class."""


class ChannelLess:
    pass


def test_defaults_pass():
    with override_settings(COMMUNICATION={}):
        assert check_settings() == []


def test_missing_setting_passes():
    with override_settings():
        del settings.COMMUNICATION
        assert check_settings() == []


def test_full_valid_setting_passes():
    valid = {
        "ROUTING": {"reminder": "email", "alert": "sms"},
        "RECIPIENT_RESOLVER": "tests.test_recipients.work_address",
        "PROVIDERS": TEST_PROVIDERS,
        "DEFAULT_PHONE_REGION": "GB",
        "CACHE_SECONDS": 0,
    }
    with override_settings(COMMUNICATION=valid):
        assert check_settings() == []
    with override_settings(COMMUNICATION={**valid, "RECIPIENT_RESOLVER": lambda to, ch: None}):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # E001: not a dict, unknown names
        (["ROUTING"], ["communication.E001"]),
        ({"ROUTNG": {}}, ["communication.E001"]),
        ({"ROUTNG": {}, "PROVIDER": {}}, ["communication.E001"]),
        # E002: routing
        ({"ROUTING": [("reminder", "email")]}, ["communication.E002"]),
        ({"ROUTING": {"newsletter": "email"}}, ["communication.E002"]),
        ({"ROUTING": {"reminder": "fax"}}, ["communication.E002"]),
        ({"ROUTING": {"newsletter": "fax"}}, ["communication.E002", "communication.E002"]),
        # E003: resolver
        ({"RECIPIENT_RESOLVER": "tests.nowhere.resolve"}, ["communication.E003"]),
        ({"RECIPIENT_RESOLVER": "noDots"}, ["communication.E003"]),
        ({"RECIPIENT_RESOLVER": "tests.providers.TEST_PROVIDERS"}, ["communication.E003"]),
        ({"RECIPIENT_RESOLVER": 42}, ["communication.E003"]),
        # E004: providers
        ({"PROVIDERS": ["tests.providers.ScriptedProvider"]}, ["communication.E004"]),
        ({"PROVIDERS": {"x": "tests.providers.NoSuchProvider"}}, ["communication.E004"]),
        ({"PROVIDERS": {"x": "tests.test_checks.not_a_provider"}}, ["communication.E004"]),
        ({"PROVIDERS": {"x": "tests.test_checks.ChannelLess"}}, ["communication.E004"]),
        (
            {"PROVIDERS": {"x": "django_communication.providers.base.BaseProvider"}},
            ["communication.E004"],
        ),
        ({"PROVIDERS": {"x": None}}, ["communication.E004"]),
        ({"PROVIDERS": {"x": 3}}, ["communication.E004"]),
        # E005: phone region
        ({"DEFAULT_PHONE_REGION": "XX"}, ["communication.E005"]),
        ({"DEFAULT_PHONE_REGION": "gb"}, ["communication.E005"]),
        ({"DEFAULT_PHONE_REGION": "+44"}, ["communication.E005"]),
        ({"DEFAULT_PHONE_REGION": ["GB"]}, ["communication.E005"]),
        # E006: cache seconds
        ({"CACHE_SECONDS": -1}, ["communication.E006"]),
        ({"CACHE_SECONDS": "60"}, ["communication.E006"]),
        ({"CACHE_SECONDS": True}, ["communication.E006"]),
        ({"CACHE_SECONDS": None}, ["communication.E006"]),
    ],
)
def test_malformed_setting(value, expected):
    with override_settings(COMMUNICATION=value):
        assert ids(check_settings()) == expected


def test_unknown_names_are_listed():
    with override_settings(COMMUNICATION={"ROUTNG": {}, "PROVIDER": {}}):
        [error] = check_settings()
    assert "PROVIDER, ROUTNG" in error.msg
    assert "ROUTING" in error.hint


def test_several_problems_are_all_reported():
    value = {"ROUTING": {"reminder": "fax"}, "DEFAULT_PHONE_REGION": "XX", "CACHE_SECONDS": -5}
    with override_settings(COMMUNICATION=value):
        assert ids(check_settings()) == [
            "communication.E002",
            "communication.E005",
            "communication.E006",
        ]


def test_check_command_fails_on_a_malformed_setting():
    with (
        override_settings(COMMUNICATION={"ROUTING": {"reminder": "fax"}}),
        pytest.raises(SystemCheckError, match=r"communication\.E002"),
    ):
        call_command("check")


def test_check_command_passes_on_a_valid_setting():
    with override_settings(COMMUNICATION={"ROUTING": {"reminder": "email"}}):
        call_command("check")


@pytest.fixture
def secret_in_db(db):
    config = CommunicationSettings.get_solo()
    config.ses_secret_access_key = "wJalrXUtnFEMI/K7MDENG"
    config.save()
    return config


@pytest.mark.parametrize("field", ["ses_secret_access_key", "sns_secret_access_key"])
def test_secrets_in_database_warn_in_production(db, field):
    config = CommunicationSettings.get_solo()
    setattr(config, field, "wJalrXUtnFEMI/K7MDENG")
    config.save()

    with override_settings(DEBUG=False):
        assert ids(check_stored_secrets()) == ["communication.W001"]


def test_secrets_in_database_do_not_warn_in_debug(secret_in_db):
    with override_settings(DEBUG=True):
        assert check_stored_secrets() == []


def test_no_secrets_no_warning(db):
    config = CommunicationSettings.get_solo()
    config.ses_access_key_id = "AKIAEXAMPLE"  # an id alone is not a secret
    config.save()

    with override_settings(DEBUG=False):
        assert check_stored_secrets() == []


def test_no_settings_row_no_warning(db):
    with override_settings(DEBUG=False):
        assert check_stored_secrets() == []


def test_language_resolver_must_import():
    with override_settings(COMMUNICATION={"LANGUAGE_RESOLVER": "tests.nowhere.resolve"}):
        assert ids(check_settings()) == ["communication.E018"]
    with override_settings(COMMUNICATION={"LANGUAGE_RESOLVER": "tests.test_checks.NOT_CALLABLE"}):
        assert ids(check_settings()) == ["communication.E018"]


NOT_CALLABLE = "a string"


@pytest.mark.parametrize(
    "value",
    [{"ATTACHMENT_STORAGE": "nowhere"}, {"ATTACHMENT_MAX_BYTES": 0}, {"ATTACHMENT_MAX_BYTES": "1"}],
)
def test_attachment_settings_are_checked(value):
    with override_settings(COMMUNICATION=value):
        assert ids(check_settings()) == ["communication.E019"]
