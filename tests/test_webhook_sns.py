"""The SNS endpoint's security: only signed notifications from accepted topics change anything."""

from __future__ import annotations

import json
import urllib.error

import pytest

from django_communication.models import MessageEvent, Suppression
from tests.snstools import (
    CERT_URL,
    OTHER_KEY,
    OTHER_TOPIC,
    SUBSCRIBE_URL,
    TOPIC,
    URL,
    delivery,
    make_key_and_certificate,
    permanent_bounce,
    sign,
)


def unchanged(sent):
    sent.refresh_from_db()
    return sent.status == "sent" and not MessageEvent.objects.exists()


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_is_applied(sns, sent, version):
    response = sns.post(sns.notification(delivery(), version=version))

    assert response.status_code == 200, response.content
    sent.refresh_from_db()
    assert sent.status == "delivered"
    assert sns.fetched == [CERT_URL]


def test_certificate_is_fetched_once_and_cached(sns, sent):
    for _ in range(3):
        assert sns.post(sns.notification(delivery())).status_code == 200
    assert sns.fetched == [CERT_URL]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: {**d, "Message": json.dumps(permanent_bounce())}, id="message"),
        pytest.param(lambda d: {**d, "MessageId": "another"}, id="message-id"),
        pytest.param(lambda d: {**d, "Timestamp": "2030-01-01T00:00:00.000Z"}, id="timestamp"),
        pytest.param(lambda d: {**d, "Subject": "added"}, id="subject-added"),
        pytest.param(lambda d: {**d, "SignatureVersion": "2"}, id="version-swapped"),
        pytest.param(lambda d: {**d, "Signature": d["Signature"][:-8] + "AAAAAAA="}, id="sig"),
    ],
)
def test_forged_notification_is_refused_and_changes_nothing(sns, sent, tamper):
    response = sns.post(tamper(sns.notification(delivery())))

    assert response.status_code == 403
    assert unchanged(sent)
    assert not Suppression.objects.exists()


def test_signature_by_another_key_is_refused(sns, sent):
    response = sns.post(sign(sns.envelope(permanent_bounce()), key=OTHER_KEY))
    assert response.status_code == 403
    assert unchanged(sent)


def test_a_certificate_elsewhere_is_never_fetched(sns, sent):
    """A forger's own certificate, on any host but an https SNS host, is not even fetched."""
    for url in (
        "https://evil.example.com/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.com/cert.pem",
        "https://evilsns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/not-a-certificate",
    ):
        sns.certificates[url] = sns.certificates[CERT_URL]
        response = sns.post(sign({**sns.envelope(delivery()), "SigningCertURL": url}))
        assert response.status_code == 403, url
    assert sns.fetched == []
    assert unchanged(sent)


def test_an_expired_certificate_is_refused(sns, sent):
    from datetime import datetime, timedelta, timezone

    past = datetime.now(timezone.utc) - timedelta(days=10)
    key, certificate = make_key_and_certificate(
        valid_from=past - timedelta(days=10), valid_until=past
    )
    sns.certificates[CERT_URL] = certificate
    response = sns.post(sign(sns.envelope(delivery()), key=key))
    assert response.status_code == 403
    assert unchanged(sent)


def test_a_certificate_that_cannot_be_fetched_now_is_a_503(sns, sent):
    sns.fail_with = urllib.error.URLError("connection refused")
    response = sns.post(sns.notification(delivery()))
    assert response.status_code == 503  # SNS retries it later
    assert unchanged(sent)


def test_unsigned_and_malformed_requests_are_400(sns, sent):
    unsigned = sns.envelope(delivery())
    for body in (
        json.dumps(unsigned),
        json.dumps({**unsigned, "Signature": "not base64!", "SignatureVersion": "1"}),
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        json.dumps({**sign(unsigned), "Type": "Something"}),
        json.dumps({**sign(unsigned), "Message": {"an": "object"}}),
    ):
        response = sns.post(body)
        assert response.status_code in (400, 403), body
        assert response.status_code < 500
    assert sns.post(json.dumps(unsigned)).status_code == 400
    assert sns.post("not json").status_code == 400
    assert unchanged(sent)


def test_unknown_signature_version_is_refused(sns, sent):
    data = sign(sns.envelope(delivery()))
    assert sns.post({**data, "SignatureVersion": "3"}).status_code == 403
    assert unchanged(sent)


def test_wrong_topic_is_refused_even_when_signed(sns, sent):
    response = sns.post(sns.notification(delivery(), topic=OTHER_TOPIC))
    assert response.status_code == 403
    assert unchanged(sent)
    assert sns.fetched == []


def test_no_configured_topic_accepts_nothing(sns, sent, settings):
    settings.COMMUNICATION = {}
    assert sns.post(sns.notification(delivery())).status_code == 403
    assert unchanged(sent)


def test_oversized_request_is_413(sns, sent, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "WEBHOOK_MAX_BYTES": 2000}
    data = sns.notification({**delivery(), "padding": "x" * 3000})
    response = sns.post(data)
    assert response.status_code == 413
    assert unchanged(sent)
    # A lying Content-Length does not get around it either.
    response = sns.client.generic(
        "POST", URL, json.dumps(data), content_type="text/plain", CONTENT_LENGTH="10"
    )
    assert response.status_code in (400, 403, 413)
    assert unchanged(sent)


def test_only_post(sns):
    assert sns.client.get(URL).status_code == 405


def subscription(topic=TOPIC, subscribe_url=SUBSCRIBE_URL, version="1"):
    return sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "sub-1",
            "Token": "abc",
            "TopicArn": topic,
            "Message": "You have chosen to subscribe to the topic " + topic,
            "SubscribeURL": subscribe_url,
            "Timestamp": "2024-05-01T12:00:00.000Z",
            "SignatureVersion": version,
        }
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_subscription_to_an_accepted_topic_is_confirmed(sns, version):
    response = sns.post(subscription(version=version))
    assert response.status_code == 200
    assert sns.fetched == [CERT_URL, SUBSCRIBE_URL]


def test_subscription_to_another_topic_is_not_confirmed(sns):
    response = sns.post(subscription(topic=OTHER_TOPIC))
    assert response.status_code == 403
    assert sns.fetched == []


def test_forged_subscription_is_not_confirmed(sns):
    data = subscription()
    data["SubscribeURL"] = data["SubscribeURL"].replace("abc", "other")
    assert sns.post(data).status_code == 403
    assert SUBSCRIBE_URL not in sns.fetched


def test_subscribe_url_off_sns_is_not_visited(sns):
    response = sns.post(subscription(subscribe_url="https://evil.example.com/?confirm"))
    assert response.status_code == 403
    assert "https://evil.example.com/?confirm" not in sns.fetched


def test_notification_with_a_subject_verifies(sns, sent):
    response = sns.post(sns.notification(delivery(), Subject="Amazon SES Email Event"))
    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == "delivered"


def test_verified_but_unknown_payload_is_acknowledged_and_ignored(sns, sent):
    response = sns.post(sns.notification("plain text, not JSON"))
    assert response.status_code == 200
    response = sns.post(sns.notification({"something": "else"}))
    assert response.status_code == 200
    assert unchanged(sent)


def test_verified_but_malformed_ses_event_is_400(sns, sent):
    response = sns.post(sns.notification({"eventType": "Bounce", "mail": "nope"}))
    assert response.status_code == 400
    response = sns.post(
        sns.notification({"eventType": "Bounce", "mail": {"messageId": "ses-1"}, "bounce": [1]})
    )
    assert response.status_code == 400
    assert unchanged(sent)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 200_000, id="open-arrays"),
        pytest.param("[" * 200_000 + "]" * 200_000, id="closed-arrays"),
        pytest.param('{"a":' * 100_000, id="open-objects"),
        pytest.param('{"Type": "Notification", "Message": ' + "[" * 200_000, id="inside-fields"),
    ],
)
def test_deeply_nested_json_is_400_and_changes_nothing(sns, sent, body):
    """Under WEBHOOK_MAX_BYTES, but deeper than the JSON parser recurses: a 400, not a 500."""
    response = sns.post(body)

    assert response.status_code == 400
    assert sns.fetched == []
    assert unchanged(sent)


def test_a_signed_message_nested_too_deeply_is_acknowledged_and_ignored(sns, sent):
    response = sns.post(sns.notification("[" * 100_000 + "]" * 100_000))

    assert response.status_code == 200
    assert response.content == b"ignored"
    assert unchanged(sent)


@pytest.mark.parametrize(
    "field",
    ["Message", "MessageId", "Timestamp", "TopicArn", "Signature", "SigningCertURL"],
)
def test_a_notification_without_a_required_field_is_400(sns, sent, field, caplog):
    data = sns.notification(permanent_bounce())
    del data[field]

    response = sns.post(data)

    assert response.status_code == 400
    assert f"missing or bad {field}" in caplog.text
    assert sns.fetched == []
    assert unchanged(sent)
    assert not Suppression.objects.exists()


def test_a_notification_whose_message_is_null_is_400(sns, sent):
    response = sns.post({**sns.notification(permanent_bounce()), "Message": None})
    assert response.status_code == 400
    assert unchanged(sent)


@pytest.mark.parametrize("field", ["Message", "SubscribeURL", "Token"])
def test_a_subscription_without_a_required_field_is_400(sns, field):
    data = subscription()
    del data[field]

    response = sns.post(data)

    assert response.status_code == 400
    assert sns.fetched == []


MARK = "<script>alert(1)</script>"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda sns: f"not json {MARK}", 400, id="not-json"),
        pytest.param(lambda sns: {**sns.notification("x"), "Type": MARK}, 400, id="type"),
        pytest.param(lambda sns: {**sns.notification("x"), "Subject": [MARK]}, 400, id="subject"),
        pytest.param(lambda sns: sns.notification("x", topic=MARK), 403, id="topic"),
        pytest.param(
            lambda sns: {**sns.notification("x"), "SignatureVersion": MARK}, 403, id="version"
        ),
        pytest.param(
            lambda sns: sign({**sns.envelope("x"), "SigningCertURL": "https://e.com/" + MARK}),
            403,
            id="certificate-url",
        ),
        pytest.param(
            lambda sns: sign(
                {
                    **sns.envelope("x"),
                    "SigningCertURL": "https://sns.eu-west-1.amazonaws.com"
                    "/SimpleNotificationService-0bad.pem",
                }
            ),
            403,
            id="certificate-404",
        ),
        pytest.param(
            lambda sns: sns.notification({"eventType": "Bounce", "mail": MARK}), 400, id="payload"
        ),
        pytest.param(
            lambda sns: subscription(subscribe_url="https://evil.example.com/" + MARK),
            403,
            id="subscribe-url",
        ),
    ],
)
def test_refusals_answer_a_generic_body_and_log_the_detail(sns, sent, caplog, make, status):
    with caplog.at_level("WARNING", logger="django_communication"):
        response = sns.post(make(sns))

    assert response.status_code == status
    assert response.content.decode() in ("Bad Request", "Forbidden")
    assert "script" not in response.content.decode()
    assert [r for r in caplog.records if r.name == "django_communication"]  # why, in the log
    assert unchanged(sent)


def test_a_network_failure_is_not_echoed(sns, sent, caplog):
    sns.fail_with = urllib.error.URLError(f"connect to 10.0.0.1:443 failed {MARK}")
    response = sns.post(sns.notification(delivery()))
    assert response.status_code == 503
    assert response.content == b"Service Unavailable"
    assert "10.0.0.1" in caplog.text  # the detail is in the log


def test_oversized_and_bad_length_answers_are_generic(sns, settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "WEBHOOK_MAX_BYTES": 100}
    response = sns.post(sns.notification({"padding": MARK * 10}))
    assert (response.status_code, response.content) == (413, b"Request Entity Too Large")
    response = sns.client.generic("POST", URL, "{}", CONTENT_LENGTH=MARK)
    assert (response.status_code, response.content) == (400, b"Bad Request")
