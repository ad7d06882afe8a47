"""System checks for the delivery-tracking settings (communication.E007-E011)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_communication.checks import check_settings, check_urls


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_valid_tracking_settings_pass():
    valid = {
        "SITE_URL": "https://shop.example.com/",
        "SNS_TOPIC_ARNS": ["arn:aws:sns:eu-west-1:123456789012:ses-events"],
        "WEBHOOK_MAX_BYTES": 65536,
        "INBOUND_SENDER_RESOLVER": "tests.test_inbound.find_customer",
    }
    with override_settings(COMMUNICATION=valid):
        assert check_settings() == []
        assert check_urls() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"SITE_URL": "shop.example.com"}, ["communication.E007"]),
        ({"SITE_URL": "ftp://shop.example.com"}, ["communication.E007"]),
        ({"SITE_URL": "https://shop.example.com/?a=1"}, ["communication.E007"]),
        ({"SITE_URL": 42}, ["communication.E007"]),
        ({"SNS_TOPIC_ARNS": "arn:aws:sns:eu-west-1:123456789012:t"}, ["communication.E008"]),
        ({"SNS_TOPIC_ARNS": ["arn:aws:sqs:eu-west-1:123456789012:t"]}, ["communication.E008"]),
        ({"SNS_TOPIC_ARNS": ["ses-events", None]}, ["communication.E008"] * 2),
        ({"INBOUND_SENDER_RESOLVER": "tests.nowhere.find"}, ["communication.E009"]),
        ({"INBOUND_SENDER_RESOLVER": 3}, ["communication.E009"]),
        ({"WEBHOOK_MAX_BYTES": 0}, ["communication.E010"]),
        ({"WEBHOOK_MAX_BYTES": "1MB"}, ["communication.E010"]),
        ({"WEBHOOK_MAX_BYTES": True}, ["communication.E010"]),
    ],
)
def test_bad_values(value, expected):
    with override_settings(COMMUNICATION=value):
        assert ids(check_settings()) == expected


def test_site_url_without_the_urls_is_an_error():
    with override_settings(
        COMMUNICATION={"SITE_URL": "https://shop.example.com"},
        ROOT_URLCONF="tests.urls_without_communication",
    ):
        assert ids(check_urls()) == ["communication.E011"]
    with override_settings(COMMUNICATION={}, ROOT_URLCONF="tests.urls_without_communication"):
        assert check_urls() == []
