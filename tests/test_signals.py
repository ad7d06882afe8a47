"""message_sent fires for accepted messages only, without extra queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_communication import ProviderError, send, signals
from tests.providers import TEST_PROVIDERS


@pytest.fixture
def sent_signals():
    seen = []

    def receiver(sender, message, **kwargs):
        seen.append((message.status, message.provider_message_id))

    signals.message_sent.connect(receiver)
    yield seen
    signals.message_sent.disconnect(receiver)


def test_message_sent_fires_after_the_provider_accepted(comm_config, customer, sent_signals):
    message = send(to=customer, subject="Hi", body_text="Hello")
    assert sent_signals == [("sent", message.provider_message_id)]


def test_message_sent_adds_no_query(comm_config, customer):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            send(to=customer, subject="Hi", body_text="Hello")
        return len(queries)

    count()  # warm the caches
    without = count()

    def receiver(sender, message, **kwargs):
        assert message.status == "sent"

    signals.message_sent.connect(receiver)
    try:
        assert count() == without
    finally:
        signals.message_sent.disconnect(receiver)


def test_message_sent_does_not_fire_on_failure(comm_config, customer, settings, sent_signals):
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    comm_config.email_provider = "failing"
    comm_config.save()
    with pytest.raises(ProviderError):
        send(to=customer, subject="Hi", body_text="Hello")
    assert sent_signals == []


def test_a_raising_receiver_does_not_fail_the_send(comm_config, customer):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.message_sent.connect(broken)
    try:
        assert send(to=customer, subject="Hi", body_text="Hello").status == "sent"
    finally:
        signals.message_sent.disconnect(broken)
