"""Relays as processes through the faults a production worker meets, on PostgreSQL, sending
through the ``django`` provider to an SMTP server on loopback (tests/servers.py) that keeps what
it accepts; each message's Message-ID is stable (derived from its idempotency key), so a message
received twice is a message sent twice.

- every relay's database connection terminated mid-drain (``pg_terminate_backend``), twice:
  nothing lost, nothing sent twice, no relay exits;
- one relay SIGKILLed mid-batch: its events go out again within one lease (three heartbeats);
- SIGTERM during a backlog: exit 0 within the bound, the unstarted events released.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter

import pytest
from django.db import connection

from django_communication.models import Message, MessageStatus
from outbox import emit_many
from outbox.models import OutboxEvent, OutboxStatus
from tests.processes import Processes
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

RULES = {
    "fault.pair": [
        {"template_key": "pair_a", "channel": "email"},
        {"template_key": "pair_b", "channel": "email"},
    ],
}
#: Short, so that a killed relay's events come back quickly (heartbeat: every second).
LEASE_SECONDS = 3


@pytest.fixture
def relays(tmp_path, settings, comm_config, smtp_settings, make_template):
    comm_config.email_provider = "django"
    comm_config.email_from_address = "shop@example.com"
    comm_config.save()
    for key in ("pair_a", "pair_b"):
        make_template(key, email_subject=f"{key} {{{{ n }}}}", email_body_text="{{ n }}")
    outbox = {"RULES": RULES, "WAKE_ON_COMMIT": False, "LEASE_SECONDS": LEASE_SECONDS}
    settings.OUTBOX = dict(outbox)
    running = Processes(tmp_path, settings, outbox, {})
    running.env["TEST_EMAIL"] = json.dumps(
        {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": smtp_settings.host,
            "EMAIL_PORT": smtp_settings.port,
            "EMAIL_TIMEOUT": 10,
        }
    )
    try:
        yield running
    finally:
        running.kill_all()


def backlog(customer, events: int) -> list[OutboxEvent]:
    return emit_many(
        [{"event_type": "fault.pair", "to": customer, "context": {"n": n}} for n in range(events)]
    )


def loop(relays: Processes, *args: str):
    return relays.django("drain_outbox", "--loop", "--interval", "0.1", *args)


def received_ids(smtp_server) -> Counter:
    return Counter(mail.message["Message-ID"] for mail in list(smtp_server.messages))


def dispatched() -> int:
    return OutboxEvent.objects.filter(status=OutboxStatus.DISPATCHED).count()


def terminate_relay_backends() -> int:
    """Terminate every other session on the test database: each relay's connections."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def assert_each_message_once(smtp_server, events: list[OutboxEvent]) -> None:
    ids = received_ids(smtp_server)
    assert [mid for mid, count in ids.items() if count > 1] == [], "sent twice"
    assert len(ids) == 2 * len(events), "lost"
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 2 * len(events)
    stored = set(Message.objects.values_list("provider_message_id", flat=True))
    assert stored == set(ids)


def test_lost_connections_mid_drain_lose_nothing_send_nothing_twice_and_stop_no_relay(
    relays, customer, smtp_settings
):
    events = backlog(customer, 600)
    started = [loop(relays, "--batch-size", "50") for _ in range(3)]

    for progress in (150, 600):  # twice, each time in the middle of the drain
        wait_for(lambda p=progress: len(smtp_settings.messages) >= p, f"{progress} sent", 120)
        assert terminate_relay_backends() >= 3
        assert dispatched() < len(events), "the drain was over before the fault"
    wait_for(lambda: dispatched() == len(events), "every event dispatched", 180)

    assert [relay.poll() for relay in started] == [None, None, None], "a relay exited"
    outputs = []
    for relay in started:
        relay.send_signal(signal.SIGTERM)
        outputs.append(relays.finish(relay, timeout=30))
    assert_each_message_once(smtp_settings, events)
    # The fault really met the relays, and they came back.
    assert sum("database connection lost" in output for output in outputs) >= 2, outputs
    assert sum("kept through a lost connection" in output for output in outputs) >= 1, outputs
    # Each relay's summary counts what it did before and after the faults.
    dispatched_by_relays = sum(
        int(re.search(r"events dispatched (\d+),", output).group(1)) for output in outputs
    )
    assert dispatched_by_relays == len(events), outputs
    assert OutboxEvent.objects.filter(claim_token__isnull=False).count() == 0


def test_a_killed_relays_events_are_taken_over_within_a_lease(relays, customer, smtp_settings):
    # The relay that takes over is up and polling first (its probe event went out), then paused
    # (SIGSTOP) while the victim claims the whole backlog, so that its start-up time and its own
    # work do not count; it is resumed at the kill.
    [probe] = backlog(customer, 1)
    taker = loop(relays, "--batch-size", "500")
    wait_for(lambda: dispatched() == 1, "the taking-over relay to start", 120)
    taker.send_signal(signal.SIGSTOP)
    events = [probe, *backlog(customer, 300)]
    # One provider call at a time: the duplicate window is the message in flight (the lanes'
    # window, 2 x CONCURRENCY, is killed in tests/test_lanes_network.py).
    victim = loop(relays, "--batch-size", "500", "--concurrency", "1")
    wait_for(lambda: len(smtp_settings.messages) >= 2 + 100, "the victim's batch under way", 120)

    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    taker.send_signal(signal.SIGCONT)
    victim.wait(10)
    held = dict(
        OutboxEvent.objects.filter(
            claim_token__isnull=False, status=OutboxStatus.PENDING
        ).values_list("pk", "claim_token")
    )
    assert len(held) > 100, "the victim did not hold its batch at the kill"

    def taken_over() -> bool:
        now = dict(OutboxEvent.objects.filter(pk__in=held).values_list("pk", "claim_token"))
        return all(now[pk] != token for pk, token in held.items())

    wait_for(taken_over, "the killed relay's events claimed again", 60)
    took = time.monotonic() - killed_at
    print(f"killed relay's {len(held)} events claimed again {took:.2f} s after the kill")
    # Due one lease (three heartbeats of 1 s) after the victim's last renewal at the latest,
    # then the taker's next poll (0.1 s): with room for a loaded machine.
    assert took < LEASE_SECONDS + 3
    wait_for(lambda: dispatched() == len(events), "every event dispatched", 120)
    assert taker.poll() is None
    ids = received_ids(smtp_settings)
    assert len(ids) == 2 * len(events)
    # At most the killed relay's message in flight was sent again (README, "Guarantees").
    assert sum(count - 1 for count in ids.values()) <= 1


def test_sigterm_during_a_backlog_exits_0_at_once_and_releases_the_rest(
    relays, customer, smtp_settings
):
    events = backlog(customer, 1000)
    relay = loop(relays, "--batch-size", "500")
    wait_for(lambda: len(smtp_settings.messages) >= 20, "the drain under way", 120)

    relay.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    relay.wait(30)
    took = time.monotonic() - signalled_at
    output = relays.output(relay)
    print(f"SIGTERM to exit: {took:.2f} s")

    assert relay.returncode == 0, output
    # The bound (README, "Stopping a relay"): the part in progress (≤ 50 messages) and a second.
    assert took < 5, output
    assert "released" in output.strip().splitlines()[-1], output
    assert OutboxEvent.objects.filter(claim_token__isnull=False).count() == 0
    released = OutboxEvent.objects.filter(status=OutboxStatus.PENDING, attempts=0).count()
    assert released > 0
    assert dispatched() + released == len(events)
    # Nothing sent for a released event; what was sent is recorded.
    assert len(received_ids(smtp_settings)) == 2 * dispatched()
