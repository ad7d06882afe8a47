"""``python sandbox/manage.py demo``: seed templates, book, send an email and an SMS, place a
reminder call that the customer answers on the keypad, show the log.

Then the transactional outbox: booking BK-2001 is confirmed (and later cancelled) in committed
transactions that emit events; booking BK-2002 emits its event, and sends its confirmation
directly with send(), in a transaction that then fails and rolls back: the send() waited for
the commit, so nothing went out. The relay (``drain_outbox``) sends what was committed: BK-2001's
confirmation and its cancellation (email and SMS), and nothing at all about BK-2002.

Safe to run again: templates and settings are updated in place, the customer and bookings are
reused, and each message and event carries an idempotency key, so a second run reports "already
sent" / "already written" instead of sending twice (``--resend`` sends fresh copies of the direct
sends; the outbox's events are never written twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import django_communication
from bookings.documents import invite_ics, invoice_pdf
from bookings.models import Booking, Customer
from bookings.services import cancel_booking, confirm_booking, event_key
from django_communication.choices import FINAL_STATUSES
from django_communication.models import (
    CommunicationSettings,
    Message,
    MessageTemplate,
    MessageTemplateVariant,
)
from django_communication.providers.console import ConsoleProvider
from django_communication.replies import record_reply
from outbox.models import OutboxEvent

#: Booked and committed: its confirmation and cancellation are sent by the relay.
COMMITTED_REF = "BK-2001"
#: Booked in a transaction that fails after emit(): rolled back, so nothing may ever be sent.
ROLLED_BACK_REF = "BK-2002"


class PaymentDeclined(Exception):
    """The demo's failure after emit(), which rolls the booking's transaction back."""


SAMPLE = {
    "customer": {"name": "Ada Lovelace"},
    "booking": {"ref": "BK-0000"},
}

TEMPLATES = [
    {
        "key": "welcome",
        "name": "Welcome",
        "message_type": "transactional",
        "email_subject": "Welcome to Sandbox Travel, {{ customer.name }}",
        "email_body_text": (
            "Hello {{ customer.name }},\n\nThanks for signing up. We will keep you posted about "
            "your bookings.\n\nSandbox Travel"
        ),
        "email_body_html": (
            "<p>Hello {{ customer.name }},</p><p>Thanks for signing up. We will keep you posted "
            "about your bookings.</p><p><em>Sandbox Travel</em></p>"
        ),
        "sms_body": "Welcome to Sandbox Travel, {{ customer.name }}!",
    },
    {
        "key": "booking_confirmation",
        "name": "Booking confirmation",
        "message_type": "transactional",
        "email_subject": "Booking {{ booking.ref }} confirmed",
        "email_body_text": (
            "Hello {{ customer.name }},\n\nYour booking {{ booking.ref }} is confirmed.\n\n"
            "Sandbox Travel"
        ),
        "email_body_html": (
            "<p>Hello {{ customer.name }},</p><p>Your booking <strong>{{ booking.ref }}</strong> "
            "is confirmed.</p><p><em>Sandbox Travel</em></p>"
        ),
        "sms_body": "Booking {{ booking.ref }} confirmed. Sandbox Travel",
    },
    {
        "key": "booking_reminder",
        "name": "Booking reminder",
        "message_type": "reminder",
        "email_subject": "Reminder: booking {{ booking.ref }}",
        "email_body_text": "Hello {{ customer.name }},\n\nA reminder of booking {{ booking.ref }}.",
        "email_body_html": (
            "<p>Hello {{ customer.name }},</p><p>A reminder of booking {{ booking.ref }}.</p>"
        ),
        "sms_body": "Hi {{ customer.name }}, a reminder of your booking {{ booking.ref }}.",
        "voice_body": (
            "Hello {{ customer.name }}, this is Sandbox Travel about your booking "
            "{{ booking.ref }}. Press 1 to confirm it, or 2 to cancel it."
        ),
        "voice_choices": {"1": "confirm", "2": "cancel"},
    },
    {
        "key": "booking_cancelled",
        "name": "Booking cancelled",
        "message_type": "transactional",
        "email_subject": "Booking {{ booking.ref }} cancelled",
        "email_body_text": (
            "Hello {{ customer.name }},\n\nYour booking {{ booking.ref }} has been cancelled.\n\n"
            "Sandbox Travel"
        ),
        "email_body_html": (
            "<p>Hello {{ customer.name }},</p><p>Your booking <strong>{{ booking.ref }}</strong> "
            "has been cancelled.</p><p><em>Sandbox Travel</em></p>"
        ),
        "sms_body": "Booking {{ booking.ref }} cancelled. Sandbox Travel",
    },
]

#: Translated variants, by template key: language -> fields.
VARIANTS = {
    "booking_confirmation": {
        "fr": {
            "email_subject": "Réservation {{ booking.ref }} confirmée",
            "email_body_text": (
                "Bonjour {{ customer.name }},\n\nVotre réservation {{ booking.ref }} du "
                "{{ booking.created|date }} est confirmée. Vous trouverez la facture et "
                "l'invitation en pièces jointes.\n\nSandbox Travel"
            ),
            "email_body_html": (
                "<p>Bonjour {{ customer.name }},</p><p>Votre réservation "
                "<strong>{{ booking.ref }}</strong> du {{ booking.created|date }} est confirmée."
                "</p><p><em>Sandbox Travel</em></p>"
            ),
            "sms_body": "Réservation {{ booking.ref }} confirmée. Sandbox Travel",
        }
    }
}

#: The localized confirmation's booking: its customer reads French.
LOCALIZED_REF = "BK-3001"

COLUMNS = [
    ("When (UTC)", 19),
    ("Channel", 7),
    ("Type", 13),
    ("Status", 9),
    ("To", 22),
    ("Subject / body", 36),
    ("Provider", 8),
    ("About", 16),
]


def cell(value: object, width: int) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


class Command(BaseCommand):
    help = (
        "Seed message templates, create a customer and a booking, send an email and an SMS "
        "and place a reminder call (answered on the keypad) through the console provider; book "
        "in transactions that emit outbox events (one committed, one rolled back), run the "
        "relay, and print the outcome and the audit log."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--resend",
            action="store_true",
            help=(
                "Send fresh direct messages even if this booking's messages were sent before "
                "(the outbox part is idempotent either way)."
            ),
        )
        parser.add_argument(
            "--limit", type=int, default=20, help="Audit log rows to print (default 20)."
        )

    def handle(self, *args, resend: bool = False, limit: int = 20, **options) -> None:
        self.heading("1. Settings: console provider for email, SMS and voice calls")
        self.configure()
        self.heading("2. Message templates")
        for spec in TEMPLATES:
            fields = {**spec, "sample_context": SAMPLE, "is_active": True}
            key = fields.pop("key")
            _, created = MessageTemplate.objects.update_or_create(key=key, defaults=fields)
            self.stdout.write(f"  {key:<22} {'created' if created else 'updated'}")
            for language, variant in VARIANTS.get(key, {}).items():
                _, created = MessageTemplateVariant.objects.update_or_create(
                    template=MessageTemplate.objects.get(key=key),
                    language=language,
                    defaults=variant,
                )
                self.stdout.write(f"    {language} variant {'created' if created else 'updated'}")

        self.heading("3. Customer and booking")
        customer, _ = Customer.objects.get_or_create(
            email="ada@example.com",
            defaults={"name": "Ada Lovelace", "phone": "+44 7911 123456"},
        )
        booking, _ = Booking.objects.get_or_create(ref="BK-1001", defaults={"customer": customer})
        self.stdout.write(f"  customer #{customer.pk} {customer} {customer.email} {customer.phone}")
        self.stdout.write(f"  booking  {booking.ref} (created {booking.created:%Y-%m-%d %H:%M})")

        self.heading("4. Sending")
        context = {"customer": customer, "booking": booking}
        suffix = f":{uuid.uuid4()}" if resend else ""
        sends = [
            ("welcome", "email", None, f"demo:welcome:{customer.pk}{suffix}"),
            ("booking_confirmation", "email", booking, f"demo:confirm:{booking.pk}{suffix}"),
            ("booking_reminder", "sms", booking, f"demo:remind:{booking.pk}{suffix}"),
        ]
        with self.console_output():
            for template_key, channel, related, key in sends:
                already = Message.objects.filter(
                    idempotency_key=key, status__in=FINAL_STATUSES
                ).exists()
                message = django_communication.send(
                    to=customer,
                    template_key=template_key,
                    context=context,
                    channel=channel,
                    related_object=related,
                    idempotency_key=key,
                )
                outcome = "already sent earlier, not sent again" if already else message.status
                self.stdout.write(
                    f"  {template_key} -> {message.channel} {message.to_address}: {outcome}"
                )
        about = django_communication.get_messages_for_object(booking).count()
        self.stdout.write(f"  messages about booking {booking.ref}: {about}")

        self.heading("5. Voice: a reminder call, answered on the keypad")
        self.call_and_answer(customer, booking, context, suffix)

        self.heading("6. Outbox: bookings that emit events in their transactions")
        committed = self.book_and_cancel(customer)
        self.book_and_roll_back(customer)

        self.heading("7. Relay: drain_outbox sends what was committed")
        with self.console_output():
            call_command("drain_outbox", stdout=self.stdout)

        self.heading("8. Outbox events and the messages they produced")
        self.print_outbox(committed, limit)

        self.heading(f"9. Audit log (Message rows, newest first, up to {limit})")
        self.print_log(limit)
        self.heading("10. A localized confirmation with a PDF invoice and a calendar invite")
        self.send_localized(resend)

        self.stdout.write(
            "\nBrowse it in the admin: python sandbox/manage.py createsuperuser, then "
            "python sandbox/manage.py runserver and open http://127.0.0.1:8000/admin/"
        )

    def send_localized(self, resend: bool) -> None:
        """To a customer whose ``language`` is French: the template's fr variant, rendered with
        French dates, the invoice and the invite attached."""
        customer, _ = Customer.objects.get_or_create(
            email="camille@example.fr",
            defaults={"name": "Camille Martin", "language": "fr"},
        )
        booking, _ = Booking.objects.get_or_create(
            ref=LOCALIZED_REF, defaults={"customer": customer}
        )
        key = f"demo:localized:{booking.pk}" + (f":{uuid.uuid4()}" if resend else "")
        already = Message.objects.filter(idempotency_key=key, status__in=FINAL_STATUSES).exists()
        with self.console_output():
            message = django_communication.send(
                to=customer,
                template_key="booking_confirmation",
                context={"customer": customer, "booking": booking},
                related_object=booking,
                idempotency_key=key,
                attachments=[
                    (f"facture-{booking.ref}.pdf", invoice_pdf(booking), "application/pdf"),
                    (f"{booking.ref}.ics", invite_ics(booking), "text/calendar"),
                ],
            )
        outcome = "sent in an earlier run, not sent again" if already else message.status
        self.stdout.write(
            f"  booking_confirmation -> {message.channel} {message.to_address} "
            f"in {message.language!r}: {outcome}"
        )
        for item in message.attachments:
            self.stdout.write(
                f"    attached {item['name']} ({item['mimetype']}, {item['size']} bytes, "
                f"sha256 {item['sha256'][:12]}...)"
            )

    def heading(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n{text}"))

    @contextmanager
    def console_output(self) -> Iterator[None]:
        """The console provider prints through the command while this lasts."""
        previous_stream = ConsoleProvider.stream
        ConsoleProvider.stream = self.stdout
        try:
            yield
        finally:
            ConsoleProvider.stream = previous_stream

    def call_and_answer(
        self, customer: Customer, booking: Booking, context: dict, suffix: str
    ) -> None:
        """Call the customer about ``booking`` (the console prints what the call says and the
        keys it listens for), then play the customer pressing 1: the keypad reply reaches
        ``bookings.services.on_keypad_reply`` through ``reply_received``, which confirms the
        booking. With Twilio, the keypad webhook records the reply the same way."""
        key = f"demo:call:{booking.pk}{suffix}"
        already = Message.objects.filter(idempotency_key=key, status__in=FINAL_STATUSES).exists()
        with self.console_output():
            call = django_communication.send(
                to=customer,
                template_key="booking_reminder",
                context=context,
                channel="voice",
                related_object=booking,
                idempotency_key=key,
            )
        outcome = "already sent earlier, not sent again" if already else call.status
        self.stdout.write(f"  booking_reminder -> voice {call.to_address}: {outcome}")
        reply = record_reply(call, "1")
        booking.refresh_from_db()
        if reply is None:
            self.stdout.write("  keypad reply 1 (confirm): already recorded earlier")
        else:
            self.stdout.write(f"  keypad reply {reply.choices} recorded, in reply to the call")
        state = "confirmed" if booking.confirmed_at else "NOT confirmed"
        self.stdout.write(f"  booking {booking.ref}: {state} (reply_received -> on_keypad_reply)")

    def book_and_cancel(self, customer: Customer) -> Booking:
        """Confirm COMMITTED_REF, then cancel it: two committed transactions, two events."""
        confirmed = self.already_emitted(COMMITTED_REF, "confirmed")
        booking = confirm_booking(customer, COMMITTED_REF)
        self.stdout.write(
            f"  confirm_booking(customer, {COMMITTED_REF!r}): committed; "
            + self.emitted(COMMITTED_REF, "confirmed", confirmed)
        )
        cancelled = self.already_emitted(COMMITTED_REF, "cancelled")
        booking = cancel_booking(booking)
        self.stdout.write(
            f"  cancel_booking({COMMITTED_REF}): committed; "
            + self.emitted(COMMITTED_REF, "cancelled", cancelled)
        )
        return booking

    @staticmethod
    def already_emitted(ref: str, what: str) -> bool:
        return OutboxEvent.objects.filter(idempotency_key=event_key(ref, what)).exists()

    @staticmethod
    def emitted(ref: str, what: str, already: bool) -> str:
        if already:
            return f"event booking.{what} already written earlier, not written again"
        return f"event booking.{what} written (idempotency key {event_key(ref, what)})"

    def book_and_roll_back(self, customer: Customer) -> None:
        """Confirm ROLLED_BACK_REF inside a transaction that fails after the emit() and after a
        direct send() of the confirmation: the send() waits for a commit that never comes."""
        key = event_key(ROLLED_BACK_REF, "confirmed")
        try:
            with transaction.atomic(), self.console_output():
                booking = confirm_booking(customer, ROLLED_BACK_REF)
                inside = OutboxEvent.objects.filter(idempotency_key=key).exists()
                self.stdout.write(
                    f"  confirm_booking(customer, {ROLLED_BACK_REF!r}) in a transaction: event "
                    f"booking.confirmed {'written' if inside else 'NOT written'}, not committed yet"
                )
                message = django_communication.send(
                    to=customer,
                    template_key="booking_confirmation",
                    context={"customer": customer, "booking": booking},
                    channel="email",
                    related_object=booking,
                )
                self.stdout.write(
                    "  send() of its confirmation email in the same transaction: Message "
                    f"{message.status}, waiting for the commit; nothing sent yet"
                )
                raise PaymentDeclined("the card was declined")
        except PaymentDeclined as exc:
            self.stdout.write(
                f"  ...then the payment failed ({exc}): the transaction rolled back, taking the "
                "booking, its event and the pending message with it; the direct send() sent "
                "nothing"
            )

    def print_outbox(self, committed: Booking, limit: int) -> None:
        events = OutboxEvent.objects.order_by("created_at")
        self.stdout.write(f"  Outbox events ({events.count()}, oldest first):")
        for event in events[:limit]:
            about = f"booking {event.context.get('booking', {}).get('ref', '?')}"
            self.stdout.write(
                f"    {event.event_type:<18} {about:<16} {event.status:<10} "
                f"key {event.idempotency_key or '-'}"
            )
            for message in event.messages().order_by("channel", "created_at"):
                text = cell(message.subject or message.body_text, 40)
                self.stdout.write(
                    f"      -> {message.channel:<5} {message.to_address:<16} "
                    f"{message.status:<7} {text}"
                )
        sent = django_communication.get_messages_for_object(committed)
        self.stdout.write(
            f"  Messages sent about booking {committed.ref} (committed): "
            f"{sent.filter(status='sent').count()} of {sent.count()}"
        )

        # The rolled-back booking: looked for everywhere it could have left a trace.
        ref = ROLLED_BACK_REF
        traces = {
            "booking": Booking.objects.filter(ref=ref).count(),
            "outbox event": OutboxEvent.objects.filter(
                Q(idempotency_key__startswith=event_key(ref, "")) | Q(context__booking__ref=ref)
            ).count(),
            "message": Message.objects.filter(
                Q(subject__contains=ref) | Q(body_text__contains=ref)
            ).count(),
        }
        if not any(traces.values()):
            self.stdout.write(
                f"  Booking {ref} (rolled back): no booking, no outbox event, no message. "
                "Nothing was sent about it."
            )
        else:
            found = ", ".join(f"{count} {name}(s)" for name, count in traces.items())
            self.stdout.write(self.style.ERROR(f"  UNEXPECTED: booking {ref} left {found}"))

    def configure(self) -> None:
        config = CommunicationSettings.get_solo()
        changed = []
        for field in ("email_provider", "sms_provider", "voice_provider"):
            if getattr(config, field) != "console":
                changed.append(f"{field} {getattr(config, field)!r} -> 'console'")
                setattr(config, field, "console")
        if not config.sms_sender_id and not config.sms_origination_number:
            config.sms_sender_id = "SANDBOX"
            changed.append("sms_sender_id -> 'SANDBOX'")
        if not config.voice_caller_id:
            config.voice_caller_id = "+15005550006"
            changed.append("voice_caller_id -> '+15005550006'")
        if changed:
            config.save()
        self.stdout.write(f"  {'; '.join(changed) if changed else 'already set up'}")

    def print_log(self, limit: int) -> None:
        rows = Message.objects.select_related("related_content_type").order_by("-created_at")[
            :limit
        ]
        header = "  ".join(name.ljust(width) for name, width in COLUMNS)
        self.stdout.write(header.rstrip())
        self.stdout.write("  ".join("-" * width for _, width in COLUMNS))
        for message in rows:
            about = ""
            if message.related_content_type_id:
                # The object itself where it still exists, else its id.
                target = message.related_object or f"#{message.related_object_id}"
                about = f"{message.related_content_type.model} {target}"
            values = [
                timezone.localtime(message.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                message.channel,
                message.message_type,
                message.status,
                message.to_address,
                message.subject or message.body_text,
                message.provider,
                about,
            ]
            cells = [
                cell(value, width).ljust(width)
                for value, (_, width) in zip(values, COLUMNS, strict=True)
            ]
            self.stdout.write("  ".join(cells).rstrip())
        total = Message.objects.count()
        self.stdout.write(f"({min(total, limit)} of {total} messages shown)")
