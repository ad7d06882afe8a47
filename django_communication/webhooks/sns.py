"""Amazon SNS HTTP(S) notifications: parse and verify, nothing else.

A notification is trusted only if its TopicArn is in ``COMMUNICATION["SNS_TOPIC_ARNS"]`` and its
signature (SignatureVersion 1: RSA-SHA1, 2: RSA-SHA256) verifies against the certificate at
``SigningCertURL``, a genuine SNS certificate URL (``certificates.py`` fetches and caches it).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from . import certificates
from .certificates import check_sns_url
from .errors import RejectedNotification

TYPES = frozenset({"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"})

#: The fields signed, in order, per message type (absent optional ones are skipped).
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS["UnsubscribeConfirmation"] = SIGNED_FIELDS["SubscriptionConfirmation"]
REQUIRED = (
    "Type",
    "MessageId",
    "TopicArn",
    "Timestamp",
    "Signature",
    "SignatureVersion",
    "SigningCertURL",
)
#: Fields a message of each type always has (of the signed ones, only Subject is optional).
REQUIRED_BY_TYPE = {
    "Notification": ("Message",),
    "SubscriptionConfirmation": ("Message", "SubscribeURL", "Token"),
    "UnsubscribeConfirmation": ("Message", "SubscribeURL", "Token"),
}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    timestamp: str
    message: str
    subject: str
    subscribe_url: str
    raw: dict[str, Any]

    def payload(self) -> Any:
        """The ``Message`` field parsed as JSON (SES and SMS events are JSON); None if not."""
        return load_json(self.message)


def parse(body: bytes, allowed_topics: frozenset[str]) -> SnsMessage:
    """Parse and verify an SNS request body; raise RejectedNotification if it is not trusted."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise RejectedNotification("The body is not a JSON object.", 400)
    missing = [name for name in REQUIRED if not isinstance(data.get(name), str)]
    if not missing and data["Type"] not in TYPES:
        missing = ["Type"]
    if not missing:
        required = REQUIRED_BY_TYPE[data["Type"]]
        missing = [name for name in required if not isinstance(data.get(name), str)]
    if missing:
        fields = ", ".join(missing)
        raise RejectedNotification(f"Not an SNS message (missing or bad {fields}).", 400)
    for name in SIGNED_FIELDS[data["Type"]]:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise RejectedNotification(f"{name} is not a string.", 400)
    if data["TopicArn"] not in allowed_topics:
        raise RejectedNotification(f"Topic {data['TopicArn']!r} is not accepted.")
    verify(data)
    return SnsMessage(
        type=data["Type"],
        message_id=data["MessageId"],
        topic_arn=data["TopicArn"],
        timestamp=data["Timestamp"],
        message=data["Message"],
        subject=data.get("Subject") or "",
        subscribe_url=data.get("SubscribeURL") or "",
        raw=data,
    )


def load_json(text: bytes | str) -> Any:
    """``text`` parsed as JSON, or None if it is not JSON — including JSON nested too deeply
    for the parser (200,000 times ``[`` raises RecursionError, not ValueError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def string_to_sign(data: dict[str, Any]) -> bytes:
    parts = []
    for name in SIGNED_FIELDS[data["Type"]]:
        if data.get(name) is not None:
            parts.append(f"{name}\n{data[name]}\n")
    return "".join(parts).encode()


def verify(data: dict[str, Any]) -> None:
    algorithm = HASHES.get(data["SignatureVersion"])
    if algorithm is None:
        raise RejectedNotification(f"Unknown SignatureVersion {data['SignatureVersion']!r}.")
    try:
        signature = base64.b64decode(data["Signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RejectedNotification("The signature is not base64.") from exc
    key = certificates.certificate_key(data["SigningCertURL"])
    try:
        key.verify(signature, string_to_sign(data), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise RejectedNotification("The signature does not verify.") from exc


def confirm_subscription(message: SnsMessage) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation (an SNS host only)."""
    url = check_sns_url(message.subscribe_url)
    try:
        certificates.http_get(url)
    except (OSError, ValueError) as exc:
        raise RejectedNotification(f"Confirming the subscription failed: {exc}", 503) from exc
