"""Files for the attachment tests: a PDF, an inline PNG, a calendar invite, and how the email
carrying them must look when it arrives."""

from __future__ import annotations

from django.core.files.base import ContentFile

from django_communication import send
from django_communication.attachments import PREFIX, Attachment
from django_communication.models import Message

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02pixels" * 10
INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Shop//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:bk1@example.com\r\nDTSTAMP:20261202T090000Z\r\n"
    "DTSTART:20261224T180000Z\r\nDTEND:20261224T200000Z\r\nSUMMARY:Dinner\r\n"
    "ORGANIZER:mailto:shop@example.com\r\nATTENDEE;RSVP=TRUE:mailto:john@example.com\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def stored_files(media) -> list[str]:
    root = media / PREFIX
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def files_for_booking() -> list:
    return [
        ("invoice.pdf", PDF, "application/pdf"),
        Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ("booking.ics", INVITE, "text/calendar"),
        ContentFile(b"plain notes\n", name="notes.txt"),
    ]


def send_booking(to, **kwargs) -> Message:
    return send(
        to=to,
        subject="Your booking",
        body_text="Booked.",
        body_html='<p>Booked.</p><img src="cid:logo">',
        attachments=files_for_booking(),
        **kwargs,
    )


def check_parts(parsed) -> None:
    """The MIME parts of the booking email: names, types, bytes, the inline image, the invite."""
    parts = {part.get_filename(): part for part in parsed.walk() if part.get_filename()}
    assert sorted(parts) == ["booking.ics", "invoice.pdf", "logo.png", "notes.txt"]
    assert parts["invoice.pdf"].get_content_type() == "application/pdf"
    assert parts["invoice.pdf"].get_content_disposition() == "attachment"
    assert parts["invoice.pdf"].get_payload(decode=True) == PDF
    logo = parts["logo.png"]
    assert (logo.get_content_type(), logo.get_content_disposition()) == ("image/png", "inline")
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_payload(decode=True) == PNG
    invite = parts["booking.ics"]
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_payload(decode=True).decode().replace("\r\n", "\n") == INVITE.replace(
        "\r\n", "\n"
    )
    assert parts["notes.txt"].get_content_type() == "text/plain"
    # Text travels with CRLF line ends over SMTP: the same text.
    assert parts["notes.txt"].get_payload(decode=True).replace(b"\r\n", b"\n") == b"plain notes\n"
    assert parsed.get_body(("html",)).get_content().strip() == '<p>Booked.</p><img src="cid:logo">'
