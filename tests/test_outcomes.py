"""Outcome writes: durable before the next provider call, pipelined on PostgreSQL; the django
provider's prepared emails; the relay's relaxed commits on SQLite."""

from __future__ import annotations

import sqlite3

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import DatabaseError, connection, connections
from django.utils import timezone

from django_communication.models import Message, MessageStatus
from django_communication.providers.django_mail import DjangoMailProvider
from django_communication.recorder import Recorder
from django_communication.sending import SendRequest, send_many
from django_communication.signals import message_sent
from outbox.async_commit import relax_sqlite

pytestmark = pytest.mark.django_db(transaction=True)


def requests(count: int) -> list[SendRequest]:
    return [
        SendRequest(to=f"guest{n}@example.com", subject=f"Hi {n}", body_text="Hello")
        for n in range(count)
    ]


def idle_on_the_server() -> bool:
    """No statement of this connection is waiting for its result (psycopg 3)."""
    pgconn = getattr(connection.connection, "pgconn", None)
    if pgconn is None:
        return True
    from psycopg import pq

    return pgconn.transaction_status == pq.TransactionStatus.IDLE


def test_each_outcome_is_committed_before_the_next_provider_call(scripted):
    other = connections.create_connection("default")
    seen, idle = [], []

    def observe(message):
        idle.append(idle_on_the_server())
        with other.cursor() as cursor:  # another session sees only what was committed
            cursor.execute(
                f"SELECT COUNT(*) FROM {Message._meta.db_table} WHERE status = %s",
                [MessageStatus.SENT],
            )
            seen.append(cursor.fetchone()[0])

    scripted.on_send = observe
    try:
        results = send_many(requests(5))
    finally:
        other.close()
    assert [m.status for m in results] == [MessageStatus.SENT] * 5
    assert seen == [0, 1, 2, 3, 4]
    assert idle == [True] * 5
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 5


def test_a_batch_pipelines_its_outcomes_on_postgresql_only(scripted):
    before = Recorder.pipelined
    send_many(requests(4))
    pipelined = Recorder.pipelined - before
    assert pipelined == (4 if connection.vendor == "postgresql" else 0)
    send_many(requests(1))  # a single message has nothing to overlap: a plain UPDATE
    assert Recorder.pipelined - before == pipelined
    rows = Message.objects.filter(status=MessageStatus.SENT)
    assert rows.count() == 5 and all(row.provider == "scripted" for row in rows)


def test_message_sent_receivers_see_the_recorded_outcome(scripted):
    statuses = []

    def receiver(sender, message, **kwargs):
        statuses.append(Message.objects.get(pk=message.pk).status)

    message_sent.connect(receiver)
    try:
        send_many(requests(3))
    finally:
        message_sent.disconnect(receiver)
    assert statuses == [MessageStatus.SENT] * 3


@pytest.mark.postgres
def test_a_failed_pipelined_write_raises_and_the_connection_stays_usable(scripted):
    [message] = send_many(requests(1))
    with Recorder(pipeline=True) as writer:
        assert writer.pgconn is not None
        writer.write(message, {"provider": "x" * 101, "updated_at": timezone.now()})
        with pytest.raises(DatabaseError, match="too long"):
            writer.settle()
    assert Message.objects.get(pk=message.pk).provider == "scripted"


def test_a_prepared_email_builds_its_mime_once(comm_config, settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    comm_config.email_provider = "django"
    comm_config.email_from_address = "shop@example.com"
    comm_config.save()
    mail.outbox = []
    built = []
    original = EmailMultiAlternatives.message

    def counting(self, *args, **kwargs):
        built.append(self.to[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "message", counting)
    results = send_many(
        [
            SendRequest(
                to=f"guest{n}@example.com",
                subject=f"Hi {n}",
                body_text=f"Hello {n}",
                body_html=f"<p>Hello {n}</p>",
            )
            for n in range(3)
        ]
    )
    # One build per email: locmem built the first; prepare() built the next ones the same way
    # (learnt from the first), and locmem's message() and the copies in its outbox reused them.
    assert built == [f"guest{n}@example.com" for n in range(3)]
    assert [m.to for m in mail.outbox] == [[f"guest{n}@example.com"] for n in range(3)]
    for n, (email, message) in enumerate(zip(mail.outbox, results, strict=True)):
        mime = email.message()
        assert mime["Message-ID"] == message.provider_message_id
        assert mime["Subject"] == f"Hi {n}"
        assert f"<p>Hello {n}</p>" in email.alternatives[0][0]


def test_no_mime_is_built_for_a_backend_that_does_not_ask_for_one(
    comm_config, settings, monkeypatch
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    comm_config.email_provider = "django"
    comm_config.email_from_address = "shop@example.com"
    comm_config.save()
    built = []
    original = EmailMultiAlternatives.message

    def counting(self, *args, **kwargs):
        built.append(self.to[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "message", counting)
    results = send_many(requests(3))
    assert [m.status for m in results] == [MessageStatus.SENT] * 3
    assert built == []  # like anymail, the dummy backend never builds the MIME form


def test_send_does_not_use_an_email_prepared_for_another_message(comm_config, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    provider = DjangoMailProvider(comm_config)
    first, second = (
        Message(
            to_address=f"{name}@example.com",
            from_address="shop@example.com",
            subject=name,
            body_text=name,
        )
        for name in ("first", "second")
    )
    provider.prepare(first)
    provider.send(second)
    assert [(m.to, m.subject) for m in mail.outbox] == [(["second@example.com"], "second")]


@pytest.mark.parametrize(
    "journal_mode, level, relaxed",
    [("wal", 2, True), ("wal", 3, True), ("wal", 1, False), ("delete", 2, False)],
)
def test_sqlite_relay_commits_relax_only_in_wal_mode(tmp_path, journal_mode, level, relaxed):
    db = sqlite3.connect(tmp_path / "relay.sqlite3")
    try:
        db.execute(f"PRAGMA journal_mode = {journal_mode}")
        db.execute(f"PRAGMA synchronous = {level}")
        cursor = db.cursor()
        restore = relax_sqlite(cursor)
        now = db.execute("PRAGMA synchronous").fetchone()[0]
        if relaxed:
            assert now == 1  # NORMAL: a WAL commit no longer waits for fsync
            db.execute(restore)
            assert db.execute("PRAGMA synchronous").fetchone()[0] == level
        else:
            assert (restore, now) == (None, level)
    finally:
        db.close()
