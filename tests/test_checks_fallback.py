"""System checks for COMMUNICATION["FALLBACK"] (E012) and ["RATE_LIMITS"] (E013)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_communication.checks import check_settings
from tests.providers import TEST_PROVIDERS


def ids(value) -> list[str]:
    with override_settings(COMMUNICATION=value):
        return [message.id for message in check_settings()]


def test_valid_fallback_and_rate_limits_pass():
    assert (
        ids(
            {
                "PROVIDERS": TEST_PROVIDERS,
                "FALLBACK": {"email": ["django", "email-only"], "sms": []},
                "RATE_LIMITS": {"ses": 14, "sns": 0.5, "scripted": 20},
            }
        )
        == []
    )


@pytest.mark.parametrize(
    "fallback",
    [
        ["django"],
        {"fax": ["django"]},
        {"email": "django"},
        {"email": [1]},
        {"email": ["nope"]},
        {"sms": ["django"]},  # cannot send SMS
        {"email": ["django", "django"]},
    ],
)
def test_malformed_fallback_is_e012(fallback):
    assert ids({"FALLBACK": fallback}) == ["communication.E012"]


@pytest.mark.parametrize(
    "limits",
    [
        [("ses", 14)],
        {"nope": 14},
        {"ses": 0},
        {"ses": -1},
        {"ses": "14"},
        {"ses": True},
    ],
)
def test_malformed_rate_limits_is_e013(limits):
    assert ids({"RATE_LIMITS": limits}) == ["communication.E013"]


def test_custom_providers_count_once_they_import():
    assert ids({"PROVIDERS": TEST_PROVIDERS, "RATE_LIMITS": {"scripted": 5}}) == []
    assert ids({"RATE_LIMITS": {"scripted": 5}}) == ["communication.E013"]
    # A broken PROVIDERS is reported once, as E004, not again for every name it would define.
    assert ids({"PROVIDERS": {"x": "no.such.Provider"}, "RATE_LIMITS": {"x": 5}}) == [
        "communication.E004"
    ]
