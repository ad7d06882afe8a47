"""What the localized confirmation attaches: a one-page invoice PDF (written by hand, so the
sandbox needs no PDF library) and an iCalendar invite (METHOD:REQUEST)."""

from __future__ import annotations

from datetime import timedelta

from .models import Booking


def invoice_pdf(booking: Booking) -> bytes:
    text = f"Facture {booking.ref} - Sandbox Travel".encode("latin-1")
    stream = b"BT /F1 24 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def invite_ics(booking: Booking) -> str:
    start = booking.created + timedelta(days=30)
    stamp = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Sandbox Travel//Bookings//EN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{booking.ref}@sandbox.example.com",
        f"DTSTAMP:{booking.created:{stamp}}",
        f"DTSTART:{start:{stamp}}",
        f"DTEND:{start + timedelta(hours=2):{stamp}}",
        f"SUMMARY:Sandbox Travel {booking.ref}",
        "ORGANIZER:mailto:noreply@example.com",
        f"ATTENDEE;RSVP=TRUE:mailto:{booking.customer.email}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
