"""Amazon SNS HTTP(S) notifications: parse and verify, nothing else.

A notification is trusted only if its TopicArn is in ``COMMUNICATION["SNS_TOPIC_ARNS"]`` and its
signature (SignatureVersion 1: RSA-SHA1, 2: RSA-SHA256) verifies against the certificate at
``SigningCertURL``, which must be an https URL on a genuine SNS host (see ``SNS_NETLOC``).
Certificates are fetched once per process and kept until they
expire. ``http_get`` is the one network call (certificates, subscription confirmation); tests
replace it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

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
#: A region name: two letters, one or more words, a number (``us-east-1``, ``us-gov-west-1``,
#: ``cn-north-1``). ``s3``, ``s3-us-west-2``, ``s3-accelerate`` and ``compute-1`` are not.
REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
#: The whole network location of an SNS endpoint in the aws and aws-cn partitions
#: (``sns.<region>.amazonaws.com``, ``sns.<region>.amazonaws.com.cn``), lowercase, the default
#: port at most. Anything else — user info, another
#: port, an IP literal, a trailing dot, upper case, an S3 bucket host such as
#: ``sns.s3.amazonaws.com`` — is refused, so the check needs no host normalisation.
SNS_NETLOC = re.compile(rf"sns\.{REGION}\.amazonaws\.com(?:\.cn)?(?::443)?")
#: Printable ASCII without spaces: urlsplit() drops tabs and newlines, urlopen() would not.
URL_CHARACTERS = re.compile(r"[\x21-\x7e]+")
FETCH_TIMEOUT = 5
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED = 32


class RejectedNotification(Exception):
    """The request is not a notification we trust. ``status`` is the HTTP answer: 400
    (malformed), 403 (wrong topic, bad certificate URL, bad signature), 413 (too large), 503
    (the certificate could not be fetched right now: SNS retries)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


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


def http_get(url: str) -> bytes:
    """GET an https URL (already checked to be an SNS host). Replaced in tests."""
    request = urllib.request.Request(url, headers={"User-Agent": "django-communication"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        return response.read(MAX_CERTIFICATE_BYTES + 1)


_certificates: dict[str, tuple[rsa.RSAPublicKey, datetime]] = {}
_lock = threading.Lock()


def clear_certificates() -> None:
    with _lock:
        _certificates.clear()


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
    key = certificate_key(data.get("SigningCertURL"))
    try:
        key.verify(signature, string_to_sign(data), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise RejectedNotification("The signature does not verify.") from exc


def check_sns_url(url: Any) -> str:
    """``url`` if it is an https URL on a genuine SNS endpoint; RejectedNotification if not.

    SNS writes these URLs itself, in lowercase, so the check is on the text as given: the
    scheme is exactly ``https://``, the network location matches ``SNS_NETLOC`` in full, and
    there is no fragment.
    """
    if not isinstance(url, str) or not URL_CHARACTERS.fullmatch(url):
        raise RejectedNotification("No SNS URL.")
    if (
        not url.startswith("https://")
        or "#" in url
        or not SNS_NETLOC.fullmatch(urlsplit(url).netloc)
    ):
        raise RejectedNotification(f"{url!r} is not an https URL on an SNS host.")
    return url


def certificate_key(url: Any) -> rsa.RSAPublicKey:
    url = check_sns_url(url)
    if not urlsplit(url).path.endswith(".pem"):
        raise RejectedNotification("The certificate URL does not name a .pem file.")
    now = datetime.now(timezone.utc)
    with _lock:
        cached = _certificates.get(url)
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        pem = http_get(url)
    except urllib.error.HTTPError as exc:
        raise RejectedNotification(f"The certificate URL answered {exc.code}.") from exc
    except (OSError, ValueError) as exc:  # URLError, timeouts: a retry may work
        raise RejectedNotification(f"The certificate could not be fetched: {exc}", 503) from exc
    if len(pem) > MAX_CERTIFICATE_BYTES:
        raise RejectedNotification("The certificate is too large.")
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise RejectedNotification("The certificate URL holds no PEM certificate.") from exc
    key = certificate.public_key()
    expires = certificate.not_valid_after_utc
    if not isinstance(key, rsa.RSAPublicKey):
        raise RejectedNotification("The certificate has no RSA key.")
    if not certificate.not_valid_before_utc <= now < expires:
        raise RejectedNotification("The certificate is not valid now.")
    with _lock:
        if len(_certificates) >= MAX_CACHED:
            _certificates.clear()
        _certificates[url] = (key, expires)
    return key


def confirm_subscription(message: SnsMessage) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation (an SNS host only)."""
    url = check_sns_url(message.subscribe_url)
    try:
        http_get(url)
    except (OSError, ValueError) as exc:
        raise RejectedNotification(f"Confirming the subscription failed: {exc}", 503) from exc
