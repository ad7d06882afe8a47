"""The relay on django-q2's Redis broker: a real ``qcluster`` takes the drain tasks that commits
queue through Redis, and every committed event goes out exactly once.

The cluster is a subprocess on the test database (hence ``transaction=True``), started by
the ``cluster`` fixture (tests/processes.py) with ``orm`` unset and ``redis`` set in its
Q_CLUSTER. This process must enqueue to the same Redis: django-q2 reads ``settings.Q_CLUSTER``
once, into ``django_q.conf.Conf``'s class attributes, when django_q is imported, so overriding
the setting here would change nothing. ``get_broker()`` reads ``Conf.ORM`` / ``Conf.REDIS`` at
each call, so patching those two attributes is enough (the ``cluster`` fixture already patches
``Conf.SYNC``).

Redis must answer on 127.0.0.1:6379, else the test is skipped; it uses database
OUTBOX_TEST_REDIS_DB (default 7), flushed before and after, and nothing else.
"""

from __future__ import annotations

import os
import time

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ, Task

from django_communication.models import Message, MessageStatus
from outbox import emit, wakeup
from outbox.models import OutboxEvent
from tests.events import dispatched_count
from tests.processes import expected_keys

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS = {
    "host": "127.0.0.1",
    "port": 6379,
    "db": int(os.environ.get("OUTBOX_TEST_REDIS_DB", "7")),
}
#: Where django-q2's Redis broker keeps the queue of the cluster named "tests" (tests.settings).
QUEUE_KEY = f"django_q:{Conf.CLUSTER_NAME}:q"
#: Time for the cluster to dispatch everything once the last transaction committed.
DISPATCH_SECONDS = 20


@pytest.fixture
def redis_db():
    """A client on the test's Redis database, emptied before and after; skips without Redis."""
    redis = pytest.importorskip("redis", reason="needs the redis package (the [test] extra)")
    client = redis.Redis(**REDIS, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"needs Redis on {REDIS['host']}:{REDIS['port']} ({exc})")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_enqueues(redis_db, monkeypatch) -> list[str]:
    """Send this process's django-q2 tasks to Redis; returns the queue keys enqueued to."""
    from django_q.brokers.redis_broker import Redis

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", REDIS)
    enqueued: list[str] = []
    enqueue = Redis.enqueue

    def counting_enqueue(self, task):
        enqueued.append(self.list_key)
        return enqueue(self, task)

    monkeypatch.setattr(Redis, "enqueue", counting_enqueue)
    return enqueued


def wait_until(condition, what: str, timeout: float, running, q_cluster) -> None:
    """Like wait_for, but a timeout shows the cluster's output (a broker error shows there)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if q_cluster.poll() is not None:
            pytest.fail(f"qcluster exited while waiting for {what}:\n{running.output(q_cluster)}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout}s waiting for {what}; qcluster output:\n"
                f"{running.output(q_cluster)}"
            )
        time.sleep(0.1)


def commit_events(customer, batch: int, size: int = 20) -> list[OutboxEvent]:
    with transaction.atomic():
        return [emit("proc.two", to=customer, context={"n": batch * size + n}) for n in range(size)]


def test_qcluster_on_redis_dispatches_each_committed_event_once(
    redis_db,  # first: skips before the database is set up
    redis_enqueues,
    processes,
    cluster,
    customer,
):
    processes.set_outbox(WAKE_ON_COMMIT=True, LEASE_SECONDS=60)

    # A commit before the cluster runs: its wake-up waits in the Redis list.
    events = commit_events(customer, 0)
    assert redis_enqueues == [QUEUE_KEY]
    assert redis_db.llen(QUEUE_KEY) == 1

    # A rolled-back transaction writes no event and queues nothing.
    with pytest.raises(RuntimeError), transaction.atomic():
        emit("proc.one", to=customer, context={"n": -1})
        raise RuntimeError("rolled back")
    assert OutboxEvent.objects.count() == 20
    assert redis_enqueues == [QUEUE_KEY]

    q_cluster = cluster(orm=None, redis=REDIS, workers=1)
    wait_until(
        lambda: "running." in processes.output(q_cluster),
        "the cluster to start",
        30,
        processes,
        q_cluster,
    )
    for batch in range(1, 5):
        events += commit_events(customer, batch)
    total = len(events)
    assert total == 100
    wait_until(
        lambda: dispatched_count() == total,
        f"the cluster to dispatch {total} events",
        DISPATCH_SECONDS,
        processes,
        q_cluster,
    )

    # Every message once: the provider log counts calls across processes.
    calls = processes.calls()
    assert set(calls) == expected_keys(events)
    assert [key for key, count in calls.items() if count != 1] == []
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 2 * total
    assert not Message.objects.exclude(status=MessageStatus.SENT).exists()

    # Each wake-up went through Redis (none through the ORM broker) and ran as a successful
    # drain task in the cluster; commits in quick succession were coalesced.
    wait_until(lambda: wakeup._timer is None, "the trailing wake-up", 5, processes, q_cluster)
    drains = Task.objects.filter(func=wakeup.DRAIN_TASK)
    wait_until(
        lambda: drains.count() == len(redis_enqueues),
        f"{len(redis_enqueues)} drain task results",
        DISPATCH_SECONDS,
        processes,
        q_cluster,
    )
    assert set(redis_enqueues) == {QUEUE_KEY}
    assert 2 <= len(redis_enqueues) <= 5  # one per committed transaction at most
    assert all(task.success for task in drains), [task.result for task in drains]
    assert not OrmQ.objects.exists()
    assert redis_db.llen(QUEUE_KEY) == 0
