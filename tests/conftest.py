from __future__ import annotations

from datetime import datetime, timezone

import pytest

from django_communication import cache
from django_communication.models import (
    CommunicationSettings,
    Message,
    MessageEvent,
    MessageTemplate,
)
from django_communication.providers import memory
from tests.providers import TEST_PROVIDERS, ScriptedProvider
from tests.rules import RULES

pytest_plugins = [
    "tests.servers",
    "tests.browser",
    "tests.snstools",
    "tests.processes",
    "tests.twilio_server",
]

#: Markers that name the database a test needs; the test is skipped on the other one.
DATABASE_MARKERS = {
    "postgres": ("postgresql", "needs PostgreSQL (DATABASE_URL=postgres://...)"),
    "sqlite": ("sqlite", "the SQLite variant"),
}


#: Fixtures that make a test slow or a browser test, so that ``-m "not slow and not browser"``
#: leaves it out even when its module forgot the marker.
FIXTURE_MARKERS = {"processes": "slow", "cluster": "slow", "browser": "browser", "page": "browser"}


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection
def pytest_collection_modifyitems(config, items):
    from django.db import connection

    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        for marker, (vendor, reason) in DATABASE_MARKERS.items():
            if item.get_closest_marker(marker) and connection.vendor != vendor:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear_all()
    memory.clear()
    yield
    cache.clear_all()
    memory.clear()


@pytest.fixture
def comm_config(db):
    """The settings singleton, sending everything to the in-memory provider."""
    config = CommunicationSettings.get_solo()
    config.email_provider = "memory"
    config.sms_provider = "memory"
    config.voice_provider = "memory"
    config.email_from_address = "shop@example.com"
    config.sms_origination_number = "+15005550006"
    config.save()
    return config


@pytest.fixture
def customer(db):
    from tests.testapp.models import Customer

    return Customer.objects.create(name="John", email="john@example.com", phone="+44 7911 123456")


@pytest.fixture
def booking(customer):
    from tests.testapp.models import Booking

    return Booking.objects.create(ref="BK1", customer=customer)


@pytest.fixture
def scripted(comm_config, settings):
    """Both channels through ScriptedProvider."""
    settings.COMMUNICATION = {"PROVIDERS": TEST_PROVIDERS}
    comm_config.email_provider = comm_config.sms_provider = "scripted"
    comm_config.voice_provider = "scripted"
    comm_config.save()
    ScriptedProvider.reset()
    yield ScriptedProvider
    ScriptedProvider.reset()


@pytest.fixture
def make_template(db):
    """``make_template(key, **fields)``: a saved MessageTemplate, named after its key."""

    def make(key: str, **fields) -> MessageTemplate:
        fields.setdefault("name", key.replace("_", " ").capitalize())
        return MessageTemplate.objects.create(key=key, **fields)

    return make


@pytest.fixture
def reminder_call(make_template):
    """``reminder-call``: a voice template with keypad choices; context ``ref``."""
    return make_template(
        "reminder-call",
        name="Reminder call",
        message_type="reminder",
        voice_body="Booking {{ ref }} is tomorrow. Press 1 to confirm, 2 to cancel.",
        voice_choices={"1": "confirm", "2": "cancel"},
    )


@pytest.fixture
def template(make_template):
    """``receipt``: both channels, email with text and HTML; context ``ref``."""
    return make_template(
        "receipt",
        email_subject="Receipt {{ ref }}",
        email_body_text="Thanks for order {{ ref }}.",
        email_body_html="<p>Thanks for order <b>{{ ref }}</b>.</p>",
        sms_body="Order {{ ref }} received.",
    )


@pytest.fixture
def news(make_template):
    """``news``: an announcement (opt-outs and suppressions apply), with an unsubscribe link."""
    return make_template(
        "news",
        message_type="announcement",
        email_subject="News for {{ recipient.name }}",
        email_body_text="Hello. Unsubscribe: {{ unsubscribe_url }}",
        sms_body="News!",
    )


@pytest.fixture
def templates(make_template):
    """The outbox rules' templates (tests.rules): confirmation, cancellation, and one that fails
    to render."""
    make_template(
        "booking_confirmation",
        name="Confirmation",
        message_type="transactional",
        email_subject="Booking {{ ref }}",
        email_body_text="Confirmed {{ ref }}",
    )
    make_template(
        "booking_cancelled",
        name="Cancelled",
        message_type="announcement",
        email_subject="Cancelled {{ ref }}",
        email_body_text="Cancelled {{ ref }}",
        sms_body="Cancelled {{ ref }}",
    )
    make_template(
        "broken",
        email_subject="Broken {{ ref }}",
        email_body_text="{% include 'no/such/file.txt' %}",
    )


@pytest.fixture
def outbox(settings):
    """OUTBOX with tests.rules.RULES and no wake-up; tests change settings.OUTBOX as they need."""
    settings.OUTBOX = {"RULES": RULES, "WAKE_ON_COMMIT": False}
    return settings.OUTBOX


@pytest.fixture
def sent(comm_config):
    """An email SES accepted as ``ses-1``, to John (mixed case, as a user may have typed it)."""
    return Message.objects.create(
        channel="email",
        to_address="John@Example.com",
        status="sent",
        provider="ses",
        provider_message_id="ses-1",
    )


@pytest.fixture
def bounced_message(db):
    """``bounced_message(marker)``: a bounced email with its history, delivered then bounced,
    ``marker`` in each event's payload."""

    def make(marker: str) -> Message:
        message = Message.objects.create(
            channel="email",
            to_address="ann@example.com",
            status="bounced",
            provider_message_id="p1",
        )
        for minute, (kind, status, detail) in enumerate(
            [("delivery", "delivered", ""), ("bounce", "bounced", "Permanent / General")]
        ):
            MessageEvent.objects.create(
                message=message,
                event_type=kind,
                status=status,
                detail=detail,
                occurred_at=datetime(2024, 5, 1, 12, minute, tzinfo=timezone.utc),
                notification_id=f"n{minute}",
                payload={"eventType": kind.title(), "marker": marker},
            )
        return message

    return make


@pytest.fixture
def media(settings, tmp_path):
    """The attachment storage: a FileSystemStorage in a fresh directory."""
    # Django 4.2's override of STORAGES also overrides DEFAULT_FILE_STORAGE, whose backend then
    # replaces ours without its OPTIONS: MEDIA_ROOT gives that one the same directory.
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    return tmp_path / "media"
