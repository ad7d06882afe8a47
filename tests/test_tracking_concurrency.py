"""Bounces applied concurrently on PostgreSQL (issue 18): two notifications listing the same
recipients in opposite orders used to deadlock on the suppression list's unique index (500, and
right data only because SNS retries). Each request here is a real webhook POST from its own
thread and database connection."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client

from django_communication import tracking
from django_communication.models import Message, Suppression
from django_communication.signals import address_suppressed
from tests.waiting import DEADLINE_SECONDS, backend_pid, wait_for, waiting_on_a_lock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def bounce(message_id: str, addresses: list[str]) -> dict:
    return {
        "eventType": "Bounce",
        "mail": {"messageId": message_id},
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address} for address in addresses],
        },
    }


def sent_message(message_id: str) -> Message:
    return Message.objects.create(
        channel="email",
        to_address="list@example.com",
        status="sent",
        provider_message_id=message_id,
    )


def post_concurrently(sns, notifications: list[dict]) -> list[int]:
    """POST every notification at once, each from its own thread, client and connection; the
    status codes in order (a request that raised counts as 500)."""
    statuses: list[int] = [0] * len(notifications)
    start = threading.Barrier(len(notifications))

    def run(index: int) -> None:
        client = Client(raise_request_exception=False)
        try:
            start.wait(DEADLINE_SECONDS)
            statuses[index] = sns.post(notifications[index], client=client).status_code
        except Exception:
            statuses[index] = 500
            raise
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(notifications))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS * 2)
    assert not any(thread.is_alive() for thread in threads)
    return statuses


def test_reversed_recipient_lists_meeting_at_the_worst_moment(sns, comm_config, monkeypatch):
    """Each request, after its first suppression, waits until the other request has made its
    own first one too, or is blocked on a row lock. In payload order that is the deadlock: each
    holds one address and wants the other's. In one order for all, the second request waits for
    the first's address and both go through."""
    for message_id in ("m-1", "m-2"):
        sent_message(message_id)
    backends: dict[int, int] = {}
    past_first: set[int] = set()
    real_suppress = tracking.suppress

    def others_blocked_on_a_lock(me: int) -> bool:
        return waiting_on_a_lock(pid for thread, pid in backends.items() if thread != me)

    def suppress_then_meet(*args, **kwargs):
        me = threading.get_ident()
        first = me not in backends
        if first:
            backends[me] = backend_pid()
        row = real_suppress(*args, **kwargs)
        if first:
            past_first.add(me)
            wait_for(
                lambda: len(past_first) == 2 or others_blocked_on_a_lock(me),
                "the other request's first suppression",
            )
        return row

    monkeypatch.setattr(tracking, "suppress", suppress_then_meet)
    suppressed: list[str] = []

    def record(sender, suppression, **kwargs):
        suppressed.append(suppression.address)

    address_suppressed.connect(record)
    try:
        statuses = post_concurrently(
            sns,
            [
                sns.notification(bounce("m-1", ["a@example.com", "b@example.com"])),
                sns.notification(bounce("m-2", ["B@example.com", "a@example.com"])),
            ],
        )
    finally:
        address_suppressed.disconnect(record)

    assert statuses == [200, 200]
    assert sorted(Suppression.objects.values_list("address", flat=True)) == [
        "a@example.com",
        "b@example.com",
    ]
    assert sorted(suppressed) == ["a@example.com", "b@example.com"]  # one signal per address
    assert set(Message.objects.values_list("status", flat=True)) == {"bounced"}


def test_pairs_of_reversed_bounces_sent_at_once(sns, comm_config):
    """Six pairs at once, as a load test would send them: no 5xx, one suppression each."""
    notifications = []
    for pair in range(6):
        addresses = [f"first-{pair}@example.com", f"second-{pair}@example.com"]
        for order, recipients in enumerate((addresses, addresses[::-1])):
            notifications.append(sns.notification(bounce(f"m-{pair}-{order}", recipients)))

    statuses = post_concurrently(sns, notifications)

    assert statuses == [200] * len(notifications)
    assert Suppression.objects.count() == 12
    assert set(Suppression.objects.values_list("address", flat=True)) == {
        f"{which}-{pair}@example.com" for pair in range(6) for which in ("first", "second")
    }
