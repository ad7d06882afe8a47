"""SnsProvider against moto's server on loopback, through django_communication.send()."""

from __future__ import annotations

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from django_communication import ProviderError, send
from django_communication.models import Message
from django_communication.providers import sns as sns_module
from django_communication.providers.registry import provider_for_channel
from tests.servers import FAKE_KEY_ID

SMS_REGION = "eu-west-2"


@pytest.fixture
def sns_config(comm_config, moto_server):
    comm_config.sms_provider = "sns"
    comm_config.ses_region = "eu-west-1"
    comm_config.sns_region = SMS_REGION
    comm_config.sms_sender_id = "TheShop"
    comm_config.sms_origination_number = "+15005550006"
    comm_config.save()
    return comm_config


def published(region=SMS_REGION):
    return sns_backends[DEFAULT_ACCOUNT_ID][region].sms_messages


def test_transactional_sms_with_sender_id_and_origination_number(sns_config, moto_server, customer):
    message = send(to=customer, channel="sms", body_text="Your code is 1234")

    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.provider, row.error) == ("sent", "sns", "")
    assert row.from_address == "+15005550006"
    assert dict(published()) == {row.provider_message_id: ("+447911123456", "Your code is 1234")}
    [call] = moto_server.sns_publish_calls()
    assert call["PhoneNumber"] == "+447911123456"
    assert call["Message"] == "Your code is 1234"
    assert call["attributes"] == {
        "AWS.SNS.SMS.SMSType": "Transactional",
        "AWS.SNS.SMS.SenderID": "TheShop",
        "AWS.MM.SMS.OriginationNumber": "+15005550006",
    }
    [request] = moto_server.requests
    assert request.access_key_id == FAKE_KEY_ID
    assert request.credential_scope[2:4] == [SMS_REGION, "sns"]


@pytest.mark.parametrize(
    ("message_type", "sms_type"),
    [
        ("announcement", "Promotional"),
        ("transactional", "Transactional"),
        ("reminder", "Transactional"),
        ("alert", "Transactional"),
    ],
)
def test_sms_type_follows_the_message_type(
    sns_config, moto_server, customer, message_type, sms_type
):
    message = send(to=customer, channel="sms", body_text="News", message_type=message_type)

    assert message.status == "sent"
    [call] = moto_server.sns_publish_calls()
    assert call["attributes"]["AWS.SNS.SMS.SMSType"] == sms_type


def test_optional_attributes_are_left_out_and_region_falls_back_to_ses(
    sns_config, moto_server, customer
):
    sns_config.sms_sender_id = ""
    sns_config.sms_origination_number = ""
    sns_config.sns_region = ""
    sns_config.save()

    message = send(to=customer, channel="sms", body_text="Hi")

    assert message.status == "sent"
    [call] = moto_server.sns_publish_calls()
    assert call["attributes"] == {"AWS.SNS.SMS.SMSType": "Transactional"}
    assert message.provider_message_id in published("eu-west-1")
    assert published(SMS_REGION) == {}


def test_explicit_sns_keys_are_used(sns_config, moto_server, monkeypatch, customer):
    built = []
    real_build_client = sns_module.build_client
    monkeypatch.setattr(
        sns_module, "build_client", lambda *a, **kw: built.append(a) or real_build_client(*a, **kw)
    )
    sns_config.sns_access_key_id = "AKIASNSEXPLICIT00001"
    sns_config.sns_secret_access_key = "sns-secret"
    sns_config.save()

    send(to=customer, channel="sms", body_text="one")
    send(to=customer, channel="sms", body_text="two")

    client = provider_for_channel("sms").client
    assert client._request_signer._credentials.access_key == "AKIASNSEXPLICIT00001"
    assert [r.access_key_id for r in moto_server.requests] == ["AKIASNSEXPLICIT00001"] * 2
    assert built == [("sns",)]  # one client for both messages
    assert len(published()) == 2


def test_default_chain_when_sns_keys_are_blank(sns_config, moto_server, monkeypatch, customer):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    sns_config.ses_access_key_id = "AKIASESONLY000000001"  # SES keys are not borrowed
    sns_config.ses_secret_access_key = "ses-secret"
    sns_config.sns_access_key_id = "AKIAHALFCONFIGURED01"  # without a secret: ignored
    sns_config.save()

    send(to=customer, channel="sms", body_text="Hi")

    credentials = provider_for_channel("sms").client._request_signer._credentials
    assert (credentials.access_key, credentials.method) == ("AKIAFROMENVIRONMENT1", "env")
    assert [r.access_key_id for r in moto_server.requests] == ["AKIAFROMENVIRONMENT1"]


def test_rejected_sms_is_a_permanent_failure(sns_config, moto_server, customer):
    # moto answers InvalidParameter (HTTP 400) for an SMS over 1600 bytes, as SNS does.
    with pytest.raises(ProviderError) as info:
        send(to=customer, channel="sms", body_text="x" * 1700)

    assert info.value.retryable is False
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed"
    assert "InvalidParameter" in row.error
    assert published() == {}


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, "Throttled", True),
        (500, "InternalError", True),
        (400, "InvalidParameter", False),
        (403, "AuthorizationError", False),
        (400, "OptedOut", False),
    ],
)
def test_error_answers_are_classified(sns_config, moto_server, customer, status, code, retryable):
    moto_server.fail_with(status, code, "as the test says")

    with pytest.raises(ProviderError) as info:
        send(to=customer, channel="sms", body_text="Hi")

    assert info.value.retryable is retryable
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed"
    assert code in row.error and "as the test says" in row.error


def test_outage_is_retryable(sns_config, moto_server, customer):
    moto_server.stop()

    with pytest.raises(ProviderError) as info:
        send(to=customer, channel="sms", body_text="Hi")

    assert info.value.retryable is True
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed" and "EndpointConnectionError" in row.error
    moto_server.start()
    assert send(to=customer, channel="sms", body_text="Hi").status == "sent"
