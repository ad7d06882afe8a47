"""``python sandbox/manage.py demo``: seed templates, book, send an email and an SMS, show the log.

Safe to run again: templates and settings are updated in place, the customer and booking are
reused, and each message carries an idempotency key, so a second run reports "already sent"
instead of sending twice (``--resend`` sends fresh copies).
"""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand
from django.utils import timezone

import django_communication
from bookings.models import Booking, Customer
from django_communication.models import CommunicationSettings, Message, MessageTemplate
from django_communication.providers.console import ConsoleProvider
from django_communication.sending import FINAL_STATUSES

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
    },
]

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
        "through the console provider, and print the audit log."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--resend",
            action="store_true",
            help="Send fresh messages even if this booking's messages were sent before.",
        )
        parser.add_argument(
            "--limit", type=int, default=20, help="Audit log rows to print (default 20)."
        )

    def handle(self, *args, resend: bool = False, limit: int = 20, **options) -> None:
        self.heading("1. Settings: console provider for email and SMS")
        self.configure()
        self.heading("2. Message templates")
        for spec in TEMPLATES:
            fields = {**spec, "sample_context": SAMPLE, "is_active": True}
            key = fields.pop("key")
            _, created = MessageTemplate.objects.update_or_create(key=key, defaults=fields)
            self.stdout.write(f"  {key:<22} {'created' if created else 'updated'}")

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
        previous_stream = ConsoleProvider.stream
        ConsoleProvider.stream = self.stdout  # the console provider prints through the command
        try:
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
        finally:
            ConsoleProvider.stream = previous_stream

        about = django_communication.get_messages_for_object(booking).count()
        self.stdout.write(f"  messages about booking {booking.ref}: {about}")

        self.heading(f"5. Audit log (Message rows, newest first, up to {limit})")
        self.print_log(limit)
        self.stdout.write(
            "\nBrowse it in the admin: python sandbox/manage.py createsuperuser, then "
            "python sandbox/manage.py runserver and open http://127.0.0.1:8000/admin/"
        )

    def heading(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n{text}"))

    def configure(self) -> None:
        config = CommunicationSettings.get_solo()
        changed = []
        for field in ("email_provider", "sms_provider"):
            if getattr(config, field) != "console":
                changed.append(f"{field} {getattr(config, field)!r} -> 'console'")
                setattr(config, field, "console")
        if not config.sms_sender_id and not config.sms_origination_number:
            config.sms_sender_id = "SANDBOX"
            changed.append("sms_sender_id -> 'SANDBOX'")
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
