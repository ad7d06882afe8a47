"""Certificate fetches cannot be multiplied by requests (issue 18): only the path SNS uses is
fetched, a failure is remembered for a few seconds, and concurrent requests for one URL share
one fetch. Fetches are counted by the ``sns`` fixture's stand-in for the network."""

from __future__ import annotations

import threading
import urllib.error
from types import SimpleNamespace

import pytest
from django.test import Client

from django_communication.webhooks import certificates
from tests.snstools import CERT_URL, sign
from tests.waiting import DEADLINE_SECONDS, wait_for

HOST = "https://sns.eu-west-1.amazonaws.com"


def with_certificate(sns, url: str) -> dict:
    """A notification the webhook acknowledges and ignores, signed through ``url``."""
    return sign({**sns.envelope("plain text"), "SigningCertURL": url})


@pytest.fixture
def clock(monkeypatch):
    """certificates' monotonic clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(certificates, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


@pytest.mark.parametrize(
    "path",
    [
        "/cert.pem",
        "/random-0123abcd.pem",
        "/SimpleNotificationService-test.pem",
        "/SimpleNotificationService-.pem",
        "/SimpleNotificationService-0123ABCD.pem",
        "/SimpleNotificationService-0123abcd.pem/",
        "/SimpleNotificationService-0123abcd.pem.txt",
        "/SimpleNotificationService-0123abcd.pem?x=1",
        "/SimpleNotificationService-0123abcd.pem?",
        "/SimpleNotificationService-0123abcd.pem%00",
        "/a/SimpleNotificationService-0123abcd.pem",
        "//SimpleNotificationService-0123abcd.pem",
        "/simplenotificationservice-0123abcd.pem",
        "/SimpleNotificationService-" + "0" * 65 + ".pem",
    ],
)
def test_only_the_path_sns_uses_is_fetched(sns, path):
    url = HOST + path
    sns.certificates[url] = sns.certificates[CERT_URL]
    assert sns.post(with_certificate(sns, url)).status_code == 403
    assert sns.fetched == []


def test_a_genuine_certificate_path_is_fetched(sns):
    url = HOST + "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
    sns.certificates[url] = sns.certificates[CERT_URL]
    assert sns.post(with_certificate(sns, url)).status_code == 200
    assert sns.fetched == [url]


def test_repeated_requests_for_a_missing_certificate_fetch_it_once(sns, clock):
    url = HOST + "/SimpleNotificationService-00000000000000000000000000000bad.pem"  # a 404

    answers = [sns.post(with_certificate(sns, url)).status_code for _ in range(20)]

    assert answers == [403] * 20
    assert sns.fetched == [url]
    clock[0] += certificates.FAILURE_SECONDS  # remembered briefly, then tried again
    assert sns.post(with_certificate(sns, url)).status_code == 403
    assert sns.fetched == [url, url]


def test_a_network_failure_is_remembered_briefly_then_retried(sns, clock):
    sns.fail_with = urllib.error.URLError("connection refused")
    answers = [sns.post(sns.notification("plain text")).status_code for _ in range(5)]
    assert answers == [503] * 5  # SNS retries these
    assert sns.fetched == [CERT_URL]

    sns.fail_with = None
    clock[0] += certificates.FAILURE_SECONDS - 0.1
    assert sns.post(sns.notification("plain text")).status_code == 503
    clock[0] += 0.1
    assert sns.post(sns.notification("plain text")).status_code == 200
    assert sns.fetched == [CERT_URL, CERT_URL]


def test_a_failure_is_remembered_for_less_than_the_sns_retry_delay():
    assert certificates.FAILURE_SECONDS < 20  # SNS's default minDelayTarget for HTTP(S)


def post_concurrently(sns, notifications: list[dict]) -> tuple[list[threading.Thread], list[int]]:
    """Start one thread per notification, each posting with its own client; the threads, and
    the list their status codes land in."""
    statuses: list[int] = [0] * len(notifications)

    def run(index: int) -> None:
        statuses[index] = sns.post(notifications[index], client=Client()).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(notifications))]
    for thread in threads:
        thread.start()
    return threads, statuses


def waiting_for(url: str) -> int:
    fetch = certificates._fetches.get(url)
    return fetch.waiting if fetch is not None else 0


@pytest.mark.parametrize(
    ("url", "status"),
    [
        pytest.param(CERT_URL, 200, id="found"),
        pytest.param(HOST + "/SimpleNotificationService-0000000000bad.pem", 403, id="missing"),
    ],
)
def test_concurrent_requests_for_one_certificate_share_one_fetch(sns, url, status):
    """Ten requests arrive while the first one's fetch is under way: they wait for it, and
    its result (the key, or the failure) answers all of them."""
    sns.gate = threading.Event()
    threads, statuses = post_concurrently(sns, [with_certificate(sns, url)] * 10)
    try:
        wait_for(lambda: len(sns.fetched) == 1 and waiting_for(url) == 9, "nine waiting requests")
    finally:
        sns.gate.set()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)

    assert statuses == [status] * 10
    assert sns.fetched == [url]
    assert certificates._fetches == {}


def test_fetches_of_different_urls_are_limited_per_process(sns):
    """Each new URL can cost a fetch, but only MAX_FETCHES of them hold a worker at once;
    one more is answered 503 (SNS would retry) without a fetch."""
    sns.gate = threading.Event()
    urls = [
        HOST + f"/SimpleNotificationService-{index:032x}.pem"
        for index in range(certificates.MAX_FETCHES)
    ]
    threads, statuses = post_concurrently(sns, [with_certificate(sns, url) for url in urls])
    try:
        wait_for(lambda: len(sns.fetched) == certificates.MAX_FETCHES, "the fetches")
        extra = HOST + "/SimpleNotificationService-ffff.pem"
        assert sns.post(with_certificate(sns, extra)).status_code == 503
        assert extra not in sns.fetched
    finally:
        sns.gate.set()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)
    assert statuses == [403] * certificates.MAX_FETCHES  # none of them exists
    sns.certificates[extra] = sns.certificates[CERT_URL]
    assert sns.post(with_certificate(sns, extra)).status_code == 200  # not remembered as failed
