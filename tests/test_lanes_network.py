"""Delivery lanes against real servers on loopback: a relay killed (SIGKILL) with N calls in
flight to an SMTP server, and SES through moto's server with 8 lanes."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import boto3
import pytest

from django_communication.models import Message, MessageStatus
from outbox import emit_many
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.events import end_leases
from tests.servers import sent_by_moto
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SES_REGION = "eu-west-1"


def subjects(mails) -> Counter:
    return Counter(str(mail.message["Subject"]) for mail in list(mails))


@pytest.mark.parametrize("lanes", [1, 8])
def test_relay_killed_with_lanes_in_flight_sends_at_most_lanes_twice(
    processes,
    comm_config,
    customer,
    smtp_settings,
    lanes,
):
    """The duplicate window: SIGKILL a relay mid-batch; the next relay sends again only what
    the provider may have accepted without its outcome recorded: at most 2 x CONCURRENCY
    messages (in flight, and answered while an outcome write was under way). Nothing is
    lost."""
    smtp = smtp_settings
    smtp.data_delay = 0.02  # a round trip per email; other sessions go on meanwhile
    comm_config.email_provider = "django"
    comm_config.save()
    processes.env["TEST_EMAIL"] = json.dumps(
        {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": smtp.host,
            "EMAIL_PORT": smtp.port,
            "EMAIL_TIMEOUT": 10,
        }
    )
    count = 240
    emit_many(
        [{"event_type": "proc.one", "to": customer, "context": {"n": n}} for n in range(count)]
    )
    relay = processes.django(
        "drain_outbox", "--batch-size", str(count), "--concurrency", str(lanes)
    )
    wait_for(lambda: len(smtp.messages) >= 40, "the relay to send 40 emails", timeout=60)
    os.killpg(relay.pid, signal.SIGKILL)
    relay.wait(10)
    assert relay.returncode == -signal.SIGKILL
    wait_for(lambda: smtp.data_in_progress == 0, "the server to answer the last DATA")
    assert OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count() == 0
    # Every email the server accepted that the database does not call sent: the window.
    accepted = subjects(smtp.messages)
    recorded = set(
        Message.objects.filter(status=MessageStatus.SENT).values_list("subject", flat=True)
    )
    assert recorded <= set(accepted)
    unrecorded = set(accepted) - recorded
    assert len(unrecorded) <= 2 * lanes

    end_leases()
    smtp.data_delay = 0.0
    assert f"dispatched {count}, retried 0, dead 0;" in processes.drain("--concurrency", str(lanes))
    received = subjects(smtp.messages)
    assert set(received) == {f"Ping {n}" for n in range(count)}  # nothing lost
    twice = {subject: n for subject, n in received.items() if n > 1}
    assert set(twice) == unrecorded  # exactly those, each once more
    assert set(twice.values()) <= {2}
    assert len(twice) <= 2 * lanes
    print(f"{lanes} lanes: {len(accepted)} accepted before the kill, {len(twice)} sent twice")


def test_ses_through_moto_with_eight_lanes_sends_each_once_overlapping(
    comm_config, customer, moto_server, settings, make_template
):
    settings.OUTBOX = {
        "RULES": {"ping": {"template_key": "ping", "channel": "email"}},
        "WAKE_ON_COMMIT": False,
        "CONCURRENCY": 8,
    }
    make_template("ping", email_subject="Ping {{ n }}", email_body_text="Ping {{ n }}")
    comm_config.email_provider = "ses"
    comm_config.ses_region = SES_REGION
    comm_config.save()
    boto3.client("sesv2", region_name=SES_REGION).create_email_identity(
        EmailIdentity="shop@example.com"
    )
    sent = sent_by_moto(SES_REGION)
    emit_many([{"event_type": "ping", "to": customer, "context": {"n": n}} for n in range(200)])
    moto_server.requests.clear()
    moto_server.hold_until_in_flight(8)  # one call at a time would wait 3 s, then stay at 1

    summary = drain()

    assert (summary.dispatched, summary.retried, summary.dead) == (200, 0, 0)
    assert moto_server.most_in_flight == 8
    calls = Counter(
        call["Content"]["Simple"]["Subject"]["Data"] for call in moto_server.ses_send_email_calls()
    )
    assert calls == Counter({f"Ping {n}": 1 for n in range(200)})
    assert len(sent) == 200
    ids = set(Message.objects.values_list("provider_message_id", flat=True))
    assert ids == {m.id for m in sent}
