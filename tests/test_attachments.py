"""Attachments: what arrives over SMTP (aiosmtpd) and through SES (moto's server), stored once
by content, refused before anything is written (SMS, oversize), the audit log and the admin."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from django_communication import InvalidArgumentError, send
from django_communication.attachments import storage
from django_communication.models import Message
from django_communication.providers.ses import SesProvider
from tests.attachments import INVITE, PDF, check_parts, send_booking, stored_files
from tests.helpers import Boom
from tests.servers import sent_by_moto

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def django_config(comm_config):
    comm_config.email_provider = "django"
    comm_config.save()
    return comm_config


def test_smtp_receives_every_part(django_config, smtp_settings, customer, media):
    message = send_booking(customer)

    [received] = smtp_settings.messages
    check_parts(received.message)
    row = Message.objects.get(pk=message.pk)
    assert row.status == "sent"
    audit = {item["name"]: item for item in row.attachments}
    assert audit["invoice.pdf"]["mimetype"] == "application/pdf"
    assert audit["invoice.pdf"]["size"] == len(PDF)
    assert audit["invoice.pdf"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert audit["logo.png"]["content_id"] == "logo"
    assert audit["notes.txt"]["mimetype"] == "text/plain"
    assert len(stored_files(media)) == 4


def test_each_file_is_stored_once(comm_config, customer, media):
    send_booking(customer)
    send_booking(customer)
    assert len(stored_files(media)) == 4
    first, second = Message.objects.order_by("created_at")
    assert [a["path"] for a in first.attachments] == [a["path"] for a in second.attachments]


def test_a_path_in_the_storage_is_attached(comm_config, customer):
    path = storage().save("tickets/ticket-42.pdf", ContentFile(PDF))
    message = send(to=customer, subject="Ticket", body_text="Attached.", attachments=[path])
    [item] = message.attachments
    assert (item["name"], item["mimetype"], item["size"]) == (
        "ticket-42.pdf",
        "application/pdf",
        len(PDF),
    )


def ses_raw_message(moto_server):
    [recorded] = sent_by_moto("eu-west-1")
    return recorded


@pytest.fixture
def ses_ready(comm_config, moto_server):
    import boto3

    comm_config.email_provider = "ses"
    comm_config.ses_region = "eu-west-1"
    comm_config.save()
    boto3.client("sesv2", region_name="eu-west-1").create_email_identity(
        EmailIdentity="shop@example.com"
    )
    return comm_config


def test_ses_sends_raw_mime_carrying_the_attachments(ses_ready, moto_server, customer):
    import email
    import email.policy

    message = send_booking(customer)

    assert message.status == "sent"
    recorded = ses_raw_message(moto_server)
    assert recorded.id == message.provider_message_id
    parsed = email.message_from_string(recorded.raw_data, policy=email.policy.default)
    assert parsed["To"] == "john@example.com"
    assert parsed["Subject"] == "Your booking"
    check_parts(parsed)


def test_ses_without_attachments_still_sends_simple_content(ses_ready, moto_server, customer):
    send(to=customer, subject="Hi", body_text="No files.")
    [call] = moto_server.ses_send_email_calls()
    assert "Simple" in call["Content"]


@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_sms_and_voice_refuse_attachments_before_anything_is_written(
    comm_config, customer, media, channel
):
    with pytest.raises(InvalidArgumentError, match="cannot carry attachments"):
        send(to=customer, channel=channel, body_text="Hi", attachments=[("a.pdf", PDF, None)])
    assert Message.objects.count() == 0
    assert stored_files(media) == []


def test_oversize_attachments_are_refused_with_nothing_written(
    comm_config, customer, media, settings
):
    settings.COMMUNICATION = {"ATTACHMENT_MAX_BYTES": len(PDF) - 1}
    with pytest.raises(InvalidArgumentError, match=r"ATTACHMENT_MAX_BYTES"):
        send(to=customer, subject="S", body_text="B", attachments=[("a.pdf", PDF, None)])
    assert Message.objects.count() == 0
    assert stored_files(media) == []


def test_ses_limit_counts_the_encoding(ses_ready, moto_server, customer, media, monkeypatch):
    # Raw size under the limit, base64 over it: refused before anything is written or sent.
    monkeypatch.setattr(SesProvider, "max_message_bytes", len(PDF) + 3000)
    with pytest.raises(InvalidArgumentError, match=r"more than the \d+ the 'ses' provider"):
        send(to=customer, subject="S", body_text="B", attachments=[("a.pdf", PDF, None)])
    assert Message.objects.count() == 0
    assert stored_files(media) == []
    assert moto_server.ses_send_email_calls() == []


@pytest.mark.parametrize(
    ("item", "error"),
    [
        ("missing/file.pdf", r"no file 'missing/file.pdf' in the attachment storage"),
        (42, r"attachments\[0\] is a int"),
        (("../x.pdf", b"x", "application/pdf"), "without '/'"),
        (("x.bin", b"x", "binary"), "no MIME type"),
    ],
)
def test_bad_items_are_named(comm_config, customer, item, error):
    with pytest.raises(InvalidArgumentError, match=error):
        send(to=customer, subject="S", body_text="B", attachments=[item])
    assert Message.objects.count() == 0


def test_without_attachments_nothing_is_stored(comm_config, customer, media):
    message = send(to=customer, subject="S", body_text="B")
    assert Message.objects.get(pk=message.pk).attachments == []
    assert stored_files(media) == []


# ------------------------------------------------------------------------------- admin


def test_admin_lists_attachments_with_download_links(admin_client, comm_config, customer):
    message = send_booking(customer)
    url = reverse("admin:django_communication_message_change", args=[message.pk])
    content = admin_client.get(url).content.decode()
    assert "invoice.pdf" in content and "application/pdf" in content
    assert hashlib.sha256(PDF).hexdigest() in content
    link = re.search(r'href="([^"]+/attachments/0/)"', content).group(1)
    response = admin_client.get(link)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Disposition"].startswith('attachment; filename="invoice.pdf"')


def test_staff_without_the_permission_see_no_link_and_cannot_download(
    client, comm_config, customer, django_user_model
):
    from django.contrib.auth.models import Permission

    message = send_booking(customer)
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(staff)
    url = reverse("admin:django_communication_message_change", args=[message.pk])
    content = client.get(url).content.decode()
    assert "invoice.pdf" in content
    assert "/attachments/0/" not in content
    download = reverse("admin:django_communication_message_attachment", args=[message.pk, 0])
    assert client.get(download).status_code == 403


# ------------------------------------------------------------------ outbox and retention


@pytest.fixture
def greet_rules(settings):
    settings.OUTBOX = {
        "RULES": {
            "greet": [
                {"template_key": "greet", "channel": "email"},
                {"template_key": "greet", "channel": "sms"},
            ]
        },
        "WAKE_ON_COMMIT": False,
    }


@pytest.fixture
def greet(db):
    from django_communication.models import MessageTemplate

    return MessageTemplate.objects.create(
        key="greet", name="Greet", email_subject="Hi", email_body_text="Hi", sms_body="Hi"
    )


@pytest.mark.django_db(transaction=True)
def test_event_files_go_with_its_email_not_its_sms(comm_config, greet, greet_rules, customer):
    from outbox import emit
    from outbox.relay import drain

    event = emit("greet", to=customer, attachments=[("invoice.pdf", PDF, "application/pdf")])
    [item] = event.attachments
    assert (item["name"], item["size"]) == ("invoice.pdf", len(PDF))
    drain()
    by_channel = {m.channel: m for m in Message.objects.all()}
    assert by_channel["email"].status == by_channel["sms"].status == "sent"
    assert by_channel["email"].attachments == event.attachments
    assert by_channel["sms"].attachments == []


@pytest.mark.django_db(transaction=True)
def test_emit_many_gives_each_event_its_files_and_its_email_carries_them(
    django_config, smtp_settings, greet, settings, media
):
    from outbox import emit_many
    from outbox.relay import drain
    from tests.testapp.models import Customer

    settings.OUTBOX = {
        "RULES": {"greet": {"template_key": "greet", "channel": "email"}},
        "WAKE_ON_COMMIT": False,
    }
    ada = Customer.objects.create(name="Ada", email="ada@example.com", phone="+44 7911 123456")
    bob = Customer.objects.create(name="Bob", email="bob@example.com", phone="+44 7911 123457")
    invoice = ("invoice.pdf", PDF, "application/pdf")
    invite = ("booking.ics", INVITE, "text/calendar")
    events = emit_many(
        [
            {"event_type": "greet", "to": ada, "attachments": [invoice, invite]},
            {"event_type": "greet", "to": bob, "attachments": [invoice]},
            {"event_type": "greet", "to": bob},
        ]
    )
    assert [[item["name"] for item in event.attachments] for event in events] == [
        ["invoice.pdf", "booking.ics"],
        ["invoice.pdf"],
        [],
    ]
    assert len(stored_files(media)) == 2  # the invoice once, for both events

    drain()
    received: dict[str, list[list[tuple]]] = {}
    for mail in smtp_settings.messages:
        parts = [
            (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            for part in mail.message.walk()
            if part.get_filename()
        ]
        received.setdefault(mail.rcpt_tos[0], []).append(parts)
    pdf = ("invoice.pdf", "application/pdf", PDF)
    [ada_parts] = received["ada@example.com"]
    assert ada_parts[0] == pdf
    assert ada_parts[1][:2] == ("booking.ics", "text/calendar")
    assert ada_parts[1][2].decode().replace("\r\n", "\n") == INVITE.replace("\r\n", "\n")
    assert sorted(received["bob@example.com"], key=len) == [[], [pdf]]


def test_emit_refuses_files_for_an_sms_event(db, customer, greet_rules, media):
    from outbox import InvalidEventError, emit
    from outbox.models import OutboxEvent

    with pytest.raises(InvalidEventError, match="cannot carry attachments"):
        emit("greet", to=customer, channel="sms", attachments=[("a.pdf", PDF, None)])
    assert OutboxEvent.objects.count() == 0
    assert stored_files(media) == []


def test_emit_refuses_oversize_files_with_nothing_written(
    db, customer, greet_rules, settings, media
):
    from outbox import InvalidEventError, emit
    from outbox.models import OutboxEvent

    settings.COMMUNICATION = {"ATTACHMENT_MAX_BYTES": 10}
    with pytest.raises(InvalidEventError, match="ATTACHMENT_MAX_BYTES"):
        emit("greet", to=customer, attachments=[("a.pdf", PDF, None)])
    assert OutboxEvent.objects.count() == 0
    assert stored_files(media) == []


@pytest.mark.django_db(transaction=True)
def test_rolled_back_emit_leaves_no_file_after_retention(customer, greet_rules, media):
    from datetime import timedelta

    from django.db import transaction

    from outbox import emit
    from outbox.retention import prune

    kept = emit("greet", to=customer, attachments=[("kept.pdf", b"%PDF kept", None)])
    with pytest.raises(Boom), transaction.atomic():
        emit("greet", to=customer, attachments=[("lost.pdf", b"%PDF rolled back", None)])
        raise Boom
    assert len(stored_files(media)) == 2  # written before the INSERT, left by the rollback

    prune(attachment_grace=timedelta(hours=1))
    assert len(stored_files(media)) == 2  # too young: its emit() might not have committed yet

    prune(attachment_grace=timedelta(0))
    assert stored_files(media) == [kept.attachments[0]["sha256"]]  # the pending event's file


def test_prune_old_messages_keeps_files_an_unsent_event_needs(
    comm_config, customer, greet_rules, media
):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from outbox import emit

    shared, alone = ("shared.pdf", b"%PDF shared", None), ("alone.pdf", b"%PDF alone", None)
    old = send(to=customer, subject="S", body_text="B", attachments=[shared, alone])
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=100))
    emit("greet", to=customer, attachments=[shared])  # unsent

    call_command("prune_attachments", "--older-than-days", "90")

    old.refresh_from_db()
    assert [item.get("pruned", False) for item in old.attachments] == [False, True]
    assert stored_files(media) == [hashlib.sha256(b"%PDF shared").hexdigest()]
    assert old.attachments[1]["sha256"] == hashlib.sha256(b"%PDF alone").hexdigest()  # audit kept
