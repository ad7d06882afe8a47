"""System checks for settings.OUTBOX: each malformed setting has its own id."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from outbox.checks import check_outbox_settings

GOOD_RULE = {"template_key": "welcome", "message_type": "transactional"}


def ids(outbox) -> list[str]:
    with override_settings(OUTBOX=outbox):
        return [message.id for message in check_outbox_settings()]


def test_defaults_and_a_full_valid_configuration_pass():
    assert ids({}) == []
    assert (
        ids(
            {
                "RULES": {
                    "a": GOOD_RULE,
                    "b": [
                        {"template_key": "welcome", "channel": "email"},
                        {"template_key": "welcome", "channel": "sms"},
                        {"template_key": "other", "channel": "email", "message_type": "alert"},
                    ],
                },
                "MAX_ATTEMPTS": 3,
                "BACKOFF_SECONDS": 0,
                "BACKOFF_MAX_SECONDS": 60.5,
                "LEASE_SECONDS": 30,
                "BATCH_SIZE": 10,
                "RETENTION_DAYS": 0,
                "WAKE_ON_COMMIT": False,
                "WAKE_INTERVAL_SECONDS": 0,
                "SCHEDULE_MINUTES": 5,
            }
        )
        == []
    )


@pytest.mark.parametrize(
    "outbox, expected",
    [
        # E001: not a dict, or unknown names
        (["RULES"], ["outbox.E001"]),
        ({"RULE": {}}, ["outbox.E001"]),
        ({"MAX_ATTEMPT": 3, "RULES": {"a": GOOD_RULE}}, ["outbox.E001"]),
        # E002: RULES not a dict of event type -> rule(s)
        ({"RULES": [GOOD_RULE]}, ["outbox.E002"]),
        ({"RULES": {"": GOOD_RULE}}, ["outbox.E002"]),
        ({"RULES": {"a": "welcome"}}, ["outbox.E002"]),
        ({"RULES": {"a": []}}, ["outbox.E002"]),
        # E003: a rule not a dict, or with unknown keys
        ({"RULES": {"a": ["welcome"]}}, ["outbox.E003"]),
        ({"RULES": {"a": {**GOOD_RULE, "template": "x"}}}, ["outbox.E003"]),
        # E004: template_key missing or empty
        ({"RULES": {"a": {"channel": "email"}}}, ["outbox.E004"]),
        ({"RULES": {"a": {"template_key": "  "}}}, ["outbox.E004"]),
        ({"RULES": {"a": {"template_key": 3}}}, ["outbox.E004"]),
        # E005: unknown channel
        ({"RULES": {"a": {"template_key": "welcome", "channel": "fax"}}}, ["outbox.E005"]),
        # E006: unknown message type
        ({"RULES": {"a": {"template_key": "welcome", "message_type": "spam"}}}, ["outbox.E006"]),
        # E007: the same rule twice for one event type
        ({"RULES": {"a": [GOOD_RULE, dict(GOOD_RULE)]}}, ["outbox.E007"]),
        (
            {
                "RULES": {
                    "a": [
                        {"template_key": "w", "channel": "email", "message_type": "alert"},
                        {"template_key": "w", "channel": "email", "message_type": "reminder"},
                    ]
                }
            },
            ["outbox.E007"],
        ),
        # E008: numbers out of range or not numbers
        ({"MAX_ATTEMPTS": 0}, ["outbox.E008"]),
        ({"BATCH_SIZE": "10"}, ["outbox.E008"]),
        ({"LEASE_SECONDS": -1}, ["outbox.E008"]),
        ({"SCHEDULE_MINUTES": True}, ["outbox.E008"]),
        ({"ASYNC_COMMIT": "yes"}, ["outbox.E008"]),
        ({"WAKE_ON_COMMIT": 1}, ["outbox.E008"]),
        ({"BACKOFF_SECONDS": -0.5}, ["outbox.E008"]),
        ({"RETENTION_DAYS": None}, ["outbox.E008"]),
        ({"WAKE_INTERVAL_SECONDS": -1, "BACKOFF_MAX_SECONDS": "1h"}, ["outbox.E008"] * 2),
        # E013: CONCURRENCY not a whole number from 1 to 64
        ({"CONCURRENCY": 0}, ["outbox.E013"]),
        ({"CONCURRENCY": 65}, ["outbox.E013"]),
        ({"CONCURRENCY": 4.0}, ["outbox.E013"]),
        ({"CONCURRENCY": True}, ["outbox.E013"]),
    ],
)
def test_malformed_settings_have_their_own_id(outbox, expected):
    assert ids(outbox) == expected


def test_errors_name_the_place(settings):
    with override_settings(
        OUTBOX={
            "RULES": {"booking.cancelled": [GOOD_RULE, {"template_key": "x", "channel": "fax"}]}
        }
    ):
        [error] = check_outbox_settings()
    assert error.msg == "OUTBOX['RULES']['booking.cancelled'][1] has unknown channel 'fax'."
    assert error.hint == "Channels: email, sms, voice."


def test_several_problems_are_reported_together():
    assert sorted(
        ids(
            {
                "RULES": {
                    "a": {"template_key": "", "channel": "fax", "message_type": "spam", "x": 1},
                },
                "MAX_ATTEMPTS": 0,
                "NOPE": 1,
            }
        )
    ) == ["outbox.E001", "outbox.E003", "outbox.E004", "outbox.E005", "outbox.E006", "outbox.E008"]


def test_missing_django_q_is_a_warning(monkeypatch):
    from django.apps import apps

    real = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: name != "django_q" and real(name))
    assert ids({}) == ["outbox.W001"]
    # The hint followed: no wake-up asked for, drain_outbox --loop runs the relay.
    assert ids({"WAKE_ON_COMMIT": False}) == []


def test_manage_py_check_fails_on_a_bad_rule():
    bad = {"RULES": {"a": {"template_key": "w", "channel": "fax"}}}
    with override_settings(OUTBOX=bad), pytest.raises(SystemCheckError, match=r"outbox\.E005"):
        call_command("check")


def test_rule_language_must_be_in_languages():
    assert ids({"RULES": {"a": {"template_key": "welcome", "language": "fr"}}}) == []
    assert ids({"RULES": {"a": {"template_key": "welcome", "language": "klingon"}}}) == [
        "outbox.E012"
    ]
