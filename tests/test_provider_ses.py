"""SesProvider against moto's server on loopback, through django_communication.send()."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from django_communication import ProviderError, send
from django_communication.models import Message
from django_communication.providers import ses as ses_module
from django_communication.providers.aws import provider_error
from django_communication.providers.base import stable_message_id
from django_communication.providers.registry import provider_for_channel
from tests.servers import FAKE_KEY_ID, sent_by_moto

REGION = "eu-west-1"


@pytest.fixture
def ses_config(comm_config, moto_server):
    comm_config.email_provider = "ses"
    comm_config.ses_region = REGION
    comm_config.email_from_address = "shop@example.com"
    comm_config.email_from_name = "The Shop"
    comm_config.save()
    return comm_config


@pytest.fixture
def verified(ses_config, moto_server):
    boto3.client("sesv2", region_name=REGION).create_email_identity(
        EmailIdentity="shop@example.com"
    )
    moto_server.requests.clear()


def test_sends_text_and_html_with_reply_to_and_configuration_set(
    ses_config, verified, moto_server, customer
):
    ses_config.email_reply_to = "help@example.com"
    ses_config.ses_configuration_set = "tracking"
    ses_config.save()

    message = send(
        to=customer, subject="Your booking", body_text="Booked.", body_html="<p>Booked.</p>"
    )

    row = Message.objects.get(pk=message.pk)
    assert (row.status, row.provider, row.error) == ("sent", "ses", "")
    assert row.sent_at is not None
    [recorded] = sent_by_moto(REGION)
    assert row.provider_message_id == recorded.id
    assert recorded.source == "The Shop <shop@example.com>"
    assert recorded.destinations == {"ToAddresses": ["john@example.com"]}
    assert recorded.subject == "Your booking"
    assert recorded.body == "<p>Booked.</p>"  # moto keeps only the HTML part; the wire has both
    [call] = moto_server.ses_send_email_calls()
    assert call["FromEmailAddress"] == "The Shop <shop@example.com>"
    assert call["Destination"] == {"ToAddresses": ["john@example.com"]}
    assert call["Content"]["Simple"]["Subject"]["Data"] == "Your booking"
    assert call["Content"]["Simple"]["Body"]["Text"]["Data"] == "Booked."
    assert call["Content"]["Simple"]["Body"]["Html"]["Data"] == "<p>Booked.</p>"
    assert call["ReplyToAddresses"] == ["help@example.com"]
    assert call["ConfigurationSetName"] == "tracking"
    # SES replaces Message-ID: the stable id of this message travels in its own header.
    headers = {h["Name"]: h["Value"] for h in call["Content"]["Simple"]["Headers"]}
    assert headers["X-Message-Key"] == stable_message_id(row)
    # Signed for the configured region and SES, with the environment's (default chain) keys.
    [request] = moto_server.requests
    assert request.access_key_id == FAKE_KEY_ID
    assert request.credential_scope[2:4] == [REGION, "ses"]


def test_text_only_without_optional_fields(ses_config, verified, moto_server):
    ses_config.email_from_name = ""
    ses_config.save()

    message = send(to="ann@example.com", subject="Plain", body_text="Just text.")

    assert message.status == "sent"
    [recorded] = sent_by_moto(REGION)
    assert (recorded.source, recorded.body) == ("shop@example.com", "Just text.")
    [call] = moto_server.ses_send_email_calls()
    assert call["Content"]["Simple"]["Body"] == {"Text": {"Data": "Just text.", "Charset": "UTF-8"}}
    assert "ReplyToAddresses" not in call
    assert "ConfigurationSetName" not in call


def test_unverified_sender_is_a_permanent_failure(ses_config, customer):
    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    error = info.value
    assert error.retryable is False and error.permanent is True
    assert error.provider == "ses"
    row = Message.objects.get(pk=error.message.pk)
    assert row.status == "failed"
    assert "MessageRejected" in row.error and "not verified" in row.error
    assert row.provider_message_id == ""
    assert sent_by_moto(REGION) == []


def test_outage_is_retryable_and_fails_fast(ses_config, verified, moto_server, customer):
    moto_server.stop()
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")
    assert time.monotonic() - started < 5

    assert info.value.retryable is True
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed"
    assert "EndpointConnectionError" in row.error

    moto_server.start()  # same port, same moto state: the verified identity survived
    again = send(to=customer, subject="Hi", body_text="Hello")
    assert again.status == "sent"
    assert [m.id for m in sent_by_moto(REGION)] == [again.provider_message_id]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (503, "ServiceUnavailable", True),
        (500, "InternalFailure", True),
        (429, "TooManyRequestsException", True),
        (400, "BadRequestException", False),
        (400, "MailFromDomainNotVerifiedException", False),
        (400, "AccountSuspendedException", False),
    ],
)
def test_error_answers_are_classified(
    ses_config, verified, moto_server, customer, status, code, retryable
):
    moto_server.fail_with(status, code, "as the test says")

    with pytest.raises(ProviderError) as info:
        send(to=customer, subject="Hi", body_text="Hello")

    assert info.value.retryable is retryable
    row = Message.objects.get(pk=info.value.message.pk)
    assert row.status == "failed"
    assert code in row.error and "as the test says" in row.error
    # botocore's "standard" retries: one retry for throttling and 5xx, none for rejections.
    assert len(moto_server.ses_send_email_calls()) == (2 if retryable else 1)


def test_client_is_built_once_and_reused(ses_config, verified, monkeypatch, customer):
    built = []
    real_build_client = ses_module.build_client

    def spy(*args, **kwargs):
        built.append((args, kwargs))
        return real_build_client(*args, **kwargs)

    monkeypatch.setattr(ses_module, "build_client", spy)

    first = send(to=customer, subject="1", body_text="one")
    provider = provider_for_channel("email")
    client = provider.client
    second = send(to=customer, subject="2", body_text="two")

    assert len(built) == 1
    assert built[0][0] == ("sesv2",) and built[0][1]["region"] == REGION
    assert provider_for_channel("email") is provider and provider.client is client
    assert first.status == second.status == "sent"
    assert len(sent_by_moto(REGION)) == 2


def test_explicit_keys_are_used_when_both_are_set(ses_config, verified, moto_server, customer):
    ses_config.ses_access_key_id = "AKIAEXPLICIT00000001"
    ses_config.ses_secret_access_key = "explicit-secret"
    ses_config.save()

    send(to=customer, subject="Hi", body_text="Hello")

    credentials = provider_for_channel("email").client._request_signer._credentials
    assert credentials.access_key == "AKIAEXPLICIT00000001"
    assert credentials.secret_key == "explicit-secret"
    [request] = moto_server.requests
    assert request.access_key_id == "AKIAEXPLICIT00000001"


@pytest.mark.parametrize("key_id", ["", "AKIAHALFCONFIGURED01"])
def test_default_chain_when_keys_are_not_both_set(
    ses_config, verified, moto_server, monkeypatch, customer, key_id
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    ses_config.ses_access_key_id = key_id
    ses_config.ses_secret_access_key = ""
    ses_config.save()

    send(to=customer, subject="Hi", body_text="Hello")

    credentials = provider_for_channel("email").client._request_signer._credentials
    assert credentials.access_key == "AKIAFROMENVIRONMENT1"
    assert credentials.method == "env"
    [request] = moto_server.requests
    assert request.access_key_id == "AKIAFROMENVIRONMENT1"


def test_service_specific_endpoint_variable_wins(ses_config, verified, moto_server, monkeypatch):
    # AWS_ENDPOINT_URL_SESV2 (the documented override for SES only) beats AWS_ENDPOINT_URL.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", moto_server.url)

    message = send(to="ann@example.com", subject="Hi", body_text="Hello")

    assert provider_for_channel("email").client.meta.endpoint_url == moto_server.url
    assert message.status == "sent"


def client_error(status, code):
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendEmail",
    )


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (client_error(400, "Throttling"), True),
        (client_error(400, "LimitExceededException"), True),
        (client_error(502, "SomethingNew"), True),
        (client_error(400, "MessageRejected"), False),
        (client_error(403, "AccessDeniedException"), False),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ConnectionClosedError(endpoint_url="http://x"), True),
        (ReadTimeoutError(endpoint_url="http://x"), True),
        (NoCredentialsError(), True),
        (ParamValidationError(report="bad"), False),
    ],
)
def test_provider_error_classification(exc, retryable):
    error = provider_error(exc, "ses")
    assert error.retryable is retryable
    assert error.provider == "ses"
