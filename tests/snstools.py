"""Signed SNS notifications without AWS: our own RSA key and self-signed certificate.

Fixtures:

``sns``
    An :class:`SnsTestClient`: accepts ``TOPIC`` (COMMUNICATION["SNS_TOPIC_ARNS"]), serves the
    test certificate at ``CERT_URL`` through ``django_communication.webhooks.certificates.http_get``
    (no network: every other URL answers 404, each fetch is recorded in ``.fetched``, and a fetch
    waits while ``.gate`` is set and not open), and posts signed notifications to the webhook:
    ``sns.post(sns.notification({...}))``.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from django_communication.webhooks import certificates
from django_communication.webhooks import sns as sns_module

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
OTHER_TOPIC = "arn:aws:sns:eu-west-1:123456789012:somebody-else"
CERT_URL = (
    "https://sns.eu-west-1.amazonaws.com"
    "/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
)
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    + TOPIC
    + "&Token=abc"
)
URL = "/communication/sns/"


def make_key_and_certificate(
    *, valid_from: datetime | None = None, valid_until: datetime | None = None
) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from or now - timedelta(days=1))
        .not_valid_after(valid_until or now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


_KEY, _CERT = make_key_and_certificate()
_OTHER_KEY, _ = make_key_and_certificate()


def sign(data: dict[str, Any], key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
    """``data`` with its Signature, per its SignatureVersion (default 1)."""
    data = {"SignatureVersion": "1", "SigningCertURL": CERT_URL, **data}
    algorithm = hashes.SHA1() if data["SignatureVersion"] == "1" else hashes.SHA256()
    text = sns_module.string_to_sign(data)
    signature = (key or _KEY).sign(text, padding.PKCS1v15(), algorithm)
    return {**data, "Signature": base64.b64encode(signature).decode()}


def delivery(message_id: str = "ses-1") -> dict[str, Any]:
    """An SES delivery notification's message for John."""
    return {
        "eventType": "Delivery",
        "mail": {"messageId": message_id, "timestamp": "2024-05-01T11:59:00.000Z"},
        "delivery": {"timestamp": "2024-05-01T12:00:00.000Z", "recipients": ["john@example.com"]},
    }


def permanent_bounce(message_id: str = "ses-1") -> dict[str, Any]:
    """An SES permanent bounce notification's message for John."""
    return {
        "eventType": "Bounce",
        "mail": {"messageId": message_id},
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": "john@example.com"}],
            "timestamp": "2024-05-01T12:00:00.000Z",
        },
    }


class SnsTestClient:
    def __init__(self, client, monkeypatch) -> None:
        self.client = client
        self.fetched: list[str] = []
        self.certificates = {CERT_URL: _CERT}
        self.fail_with: Exception | None = None
        self.gate: threading.Event | None = None
        monkeypatch.setattr(certificates, "http_get", self._http_get)

    def _http_get(self, url: str) -> bytes:
        self.fetched.append(url)
        if self.gate is not None and not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        if self.fail_with is not None:
            raise self.fail_with
        if url in self.certificates:
            return self.certificates[url]
        if url.startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"):
            return b"<ConfirmSubscriptionResponse/>"
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]

    @staticmethod
    def envelope(message: Any, *, topic: str = TOPIC, **extra: Any) -> dict[str, Any]:
        return {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2024-05-01T12:00:00.000Z",
            **extra,
        }

    def notification(self, message: Any, *, version: str = "1", **extra: Any) -> dict[str, Any]:
        """A signed Notification carrying ``message`` (JSON-encoded unless a str)."""
        return sign({**self.envelope(message, **extra), "SignatureVersion": version})

    def post(self, data: dict[str, Any] | bytes | str, *, client=None, **headers: Any):
        """POST ``data`` to the webhook, through ``client`` if given (one per thread)."""
        body = data if isinstance(data, (bytes, str)) else json.dumps(data)
        return (client or self.client).generic(
            "POST",
            URL,
            body,
            content_type="text/plain; charset=UTF-8",
            HTTP_X_AMZ_SNS_MESSAGE_TYPE=(
                data.get("Type", "") if isinstance(data, dict) else "Notification"
            ),
            **headers,
        )


@pytest.fixture
def sns(client, monkeypatch, settings, db):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "SNS_TOPIC_ARNS": [TOPIC]}
    certificates.clear_certificates()
    yield SnsTestClient(client, monkeypatch)
    certificates.clear_certificates()


OTHER_KEY = _OTHER_KEY
