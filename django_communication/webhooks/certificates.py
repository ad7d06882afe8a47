"""SNS signing certificates: which URLs may be fetched, and fetching each at most once at a time.

Only URLs that SNS itself writes are fetched: ``https://sns.<region>.amazonaws.com`` (or
``.amazonaws.com.cn``), and for a certificate the path ``/SimpleNotificationService-<hex>.pem``.
A certificate is kept until it expires (``MAX_CACHED`` of them per process). A failed fetch is
remembered for ``FAILURE_SECONDS`` — shorter than SNS's default 20-second retry delay, so a
genuine notification's retry fetches again — and requests for a URL being fetched wait for that
one fetch. At most ``MAX_FETCHES`` different URLs are fetched at once per process; a request
beyond that gets a 503 at once instead of holding a worker. ``http_get`` is the one network call
(certificates, subscription confirmation); tests replace it.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import RejectedNotification

#: A region name: two letters, one or more words, a number (``us-east-1``, ``us-gov-west-1``,
#: ``cn-north-1``). ``s3``, ``s3-us-west-2``, ``s3-accelerate`` and ``compute-1`` are not.
REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
#: The whole network location of an SNS endpoint in the aws and aws-cn partitions
#: (``sns.<region>.amazonaws.com``, ``sns.<region>.amazonaws.com.cn``), lowercase, the default
#: port at most. Anything else — user info, another port, an IP literal, a trailing dot, upper
#: case, an S3 bucket host such as ``sns.s3.amazonaws.com`` — is refused, so the check needs no
#: host normalisation.
SNS_NETLOC = re.compile(rf"sns\.{REGION}\.amazonaws\.com(?:\.cn)?(?::443)?")
#: Printable ASCII without spaces: urlsplit() drops tabs and newlines, urlopen() would not.
URL_CHARACTERS = re.compile(r"[\x21-\x7e]+")
#: The path of every SNS signing certificate.
CERTIFICATE_PATH = re.compile(r"/SimpleNotificationService-[0-9a-f]{1,64}\.pem")

FETCH_TIMEOUT = 5
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED = 32
FAILURE_SECONDS = 10.0
MAX_FAILURES = 256
MAX_FETCHES = 4
#: How long a request waits for another request's fetch of the same URL.
WAIT_SECONDS = 2 * FETCH_TIMEOUT


def http_get(url: str) -> bytes:
    """GET an https URL (already checked to be an SNS URL). Replaced in tests."""
    request = urllib.request.Request(url, headers={"User-Agent": "django-communication"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        return response.read(MAX_CERTIFICATE_BYTES + 1)


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


def check_certificate_url(url: Any) -> str:
    """``url`` if it is where SNS keeps a signing certificate; RejectedNotification if not."""
    if "?" in check_sns_url(url) or not CERTIFICATE_PATH.fullmatch(urlsplit(url).path):
        raise RejectedNotification(f"{url!r} is not the path of an SNS signing certificate.")
    return url


@dataclass
class Fetch:
    """A fetch under way: other requests for the same URL wait for ``done``."""

    done: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0


_lock = threading.Lock()
_certificates: dict[str, tuple[rsa.RSAPublicKey, datetime]] = {}
#: url → (time.monotonic() until which it is not fetched again, the failure).
_failures: dict[str, tuple[float, RejectedNotification]] = {}
_fetches: dict[str, Fetch] = {}


def clear_certificates() -> None:
    with _lock:
        _certificates.clear()
        _failures.clear()


def certificate_key(url: Any) -> rsa.RSAPublicKey:
    """The public key of the SNS certificate at ``url``: from the cache, from another request's
    fetch of it, or fetched now. RejectedNotification (403, or 503 when worth retrying)."""
    url = check_certificate_url(url)
    while True:
        with _lock:
            key = _remembered(url)
            if key is not None:
                return key
            fetch = _fetches.get(url)
            if fetch is None:
                if len(_fetches) >= MAX_FETCHES:
                    raise RejectedNotification("Too many certificate fetches under way.", 503)
                fetch = _fetches[url] = Fetch()
                break
            fetch.waiting += 1
        finished = fetch.done.wait(WAIT_SECONDS)
        with _lock:
            fetch.waiting -= 1
        if not finished:
            raise RejectedNotification("Another request's certificate fetch is slow.", 503)
    try:
        key, expires = load(url)
    except RejectedNotification as exc:
        with _lock:
            if len(_failures) >= MAX_FAILURES:
                _failures.clear()
            _failures[url] = (time.monotonic() + FAILURE_SECONDS, exc)
        raise
    else:
        with _lock:
            if len(_certificates) >= MAX_CACHED:
                _certificates.clear()
            _certificates[url] = (key, expires)
        return key
    finally:
        with _lock:
            del _fetches[url]
        fetch.done.set()


def _remembered(url: str) -> rsa.RSAPublicKey | None:
    """The cached key, None if there is none; raises the remembered failure. Under _lock."""
    cached = _certificates.get(url)
    if cached is not None and cached[1] > datetime.now(timezone.utc):
        return cached[0]
    failure = _failures.get(url)
    if failure is not None:
        until, exc = failure
        if time.monotonic() < until:
            raise RejectedNotification(exc.reason, exc.status)
        del _failures[url]
    return None


def load(url: str) -> tuple[rsa.RSAPublicKey, datetime]:
    """Fetch and check the certificate at ``url``: its RSA key and when it expires."""
    try:
        pem = http_get(url)
    except urllib.error.HTTPError as exc:
        raise RejectedNotification(f"The certificate URL {url} answered {exc.code}.") from exc
    except (OSError, ValueError) as exc:  # URLError, timeouts: a retry may work
        raise RejectedNotification(
            f"The certificate at {url} could not be fetched: {exc}", 503
        ) from exc
    if len(pem) > MAX_CERTIFICATE_BYTES:
        raise RejectedNotification(f"The certificate at {url} is too large.")
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise RejectedNotification(f"{url} holds no PEM certificate.") from exc
    key = certificate.public_key()
    expires = certificate.not_valid_after_utc
    if not isinstance(key, rsa.RSAPublicKey):
        raise RejectedNotification(f"The certificate at {url} has no RSA key.")
    if not certificate.not_valid_before_utc <= datetime.now(timezone.utc) < expires:
        raise RejectedNotification(f"The certificate at {url} is not valid now.")
    return key, expires
