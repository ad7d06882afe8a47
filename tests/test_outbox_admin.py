"""The outbox viewer in the admin: list, filters, search, read-only detail and the actions."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_communication.models import Message, MessageTemplate
from outbox import emit
from outbox.models import OutboxEvent, OutboxStatus
from outbox.operations import discard, retry_now
from outbox.relay import drain
from tests.events import make_event
from tests.rules import RULES

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:outbox_outboxevent_changelist")


SKIPPED = (
    "%s skipped: dispatched and cancelled events are final, and events a relay is sending right "
    "now are left to it."
)


def change_url(event: OutboxEvent) -> str:
    return reverse("admin:outbox_outboxevent_change", args=[event.pk])


def make_message(event: OutboxEvent, rule_key: str, **fields) -> Message:
    defaults = {"channel": "email", "status": "sent", "to_address": "john@example.com"}
    return Message.objects.create(
        idempotency_key=f"{event.message_key_prefix}{rule_key}", **{**defaults, **fields}
    )


def run_action(client, action: str, *events: OutboxEvent):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(e.pk) for e in events], "index": 0},
        follow=True,
    )


def flash(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def staff_user(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="outbox", codename__in=codenames)
    )
    return user


@pytest.fixture
def viewer_client(client, django_user_model):
    """A staff user who may look at events but neither retry nor discard them."""
    client.force_login(staff_user(django_user_model, "viewer", "view_outboxevent"))
    return client


@pytest.fixture
def retrier_client(client, django_user_model):
    """Every outbox permission (retry included) except discard; not a superuser."""
    client.force_login(
        staff_user(
            django_user_model,
            "retrier",
            "view_outboxevent",
            "change_outboxevent",
            "delete_outboxevent",
            "retry_outboxevent",
        )
    )
    return client


def action_names(response) -> list[str]:
    form = response.context.get("action_form")
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


# --------------------------------------------------------------------------- list


def test_permissions_exist():
    codenames = set(
        Permission.objects.filter(content_type__app_label="outbox").values_list(
            "codename", flat=True
        )
    )
    assert {"retry_outboxevent", "discard_outboxevent"} <= codenames


def test_changelist_columns_newest_first(admin_client):
    old = make_event(event_type="booking.old")
    OutboxEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    new = make_event(
        event_type="booking.new",
        status=OutboxStatus.DEAD,
        attempts=8,
        last_error="Gave up after 8 attempts: " + "x" * 300 + "\nsecond line",
    )
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [new, old]
    body = response.content.decode()
    for header in ("Event type", "Status", "Attempts", "Created at", "Last error"):
        assert header in body
    # No old lease ends in the list: the column's width goes to the last error.
    assert "Available at" not in body
    # The cell shows the first line, up to 300 characters; the tooltip holds the rest.
    cell = re.search(
        r'<td class="field-last_error_preview">'
        r'<span class="outbox-error" title="([^"]*)">([^<]*)</span>',
        body,
    )
    assert cell is not None
    tooltip, shown = cell.groups()
    assert shown.startswith("Gave up after 8 attempts: xxx")
    assert shown.endswith("…") and len(shown) == 300
    assert "second line" in tooltip


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(queries)

    for _ in range(2):
        make_event(last_error="boom")
    few = count_queries()
    for i in range(25):
        make_event(event_type=f"type.{i % 3}", status=OutboxStatus.DEAD, last_error="boom")
    assert count_queries() == few


def test_filter_by_status(admin_client):
    dead = make_event(status=OutboxStatus.DEAD)
    make_event(status=OutboxStatus.PENDING)
    make_event(status=OutboxStatus.DISPATCHED)
    response = admin_client.get(CHANGELIST, {"status__exact": "dead"})
    assert list(response.context["cl"].result_list) == [dead]


def test_event_type_filter_lists_distinct_types(admin_client):
    make_event(event_type="booking.confirmed")
    make_event(event_type="booking.confirmed")
    cancelled = make_event(event_type="booking.cancelled")
    response = admin_client.get(CHANGELIST)
    spec = next(f for f in response.context["cl"].filter_specs if f.field_path == "event_type")
    assert list(spec.lookup_choices) == ["booking.cancelled", "booking.confirmed"]

    response = admin_client.get(CHANGELIST, {"event_type": "booking.cancelled"})
    assert list(response.context["cl"].result_list) == [cancelled]


def test_created_at_filter_and_date_hierarchy(admin_client):
    recent = make_event()
    old = make_event()
    OutboxEvent.objects.filter(pk=old.pk).update(
        created_at=timezone.now().replace(year=2020, month=5, day=17)
    )
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    past_week = {
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
    }
    response = admin_client.get(CHANGELIST, past_week)
    assert list(response.context["cl"].result_list) == [recent]

    response = admin_client.get(CHANGELIST, {"created_at__year": 2020})
    assert list(response.context["cl"].result_list) == [old]


@pytest.mark.parametrize(
    "field", ["event_type", "idempotency_key", "ordering_key", "related_object_id"]
)
def test_search(admin_client, field):
    values = {
        "event_type": ("invoice.paid", "booking.confirmed"),
        "idempotency_key": ("order-4711-paid", "order-12-paid"),
        "ordering_key": ("customer-4711", "customer-12"),
        "related_object_id": (str(uuid.uuid4()), str(uuid.uuid4())),
    }[field]
    wanted = make_event(**{field: values[0]})
    make_event(**{field: values[1]})
    term = values[0][:12] if field != "event_type" else "invoice"
    response = admin_client.get(CHANGELIST, {"q": term})
    assert list(response.context["cl"].result_list) == [wanted]


# --------------------------------------------------------------------------- detail


def test_detail_shows_pretty_context_references_and_message_links(
    make_template, admin_client, customer
):
    template = make_template("booking_confirmation", name="Confirmation")
    event = make_event(
        context={"ref": "BK1", "lines": [{"sku": "A<1>", "qty": 2}]},
        channel="email",
        idempotency_key="booking-BK1-confirmed",
        ordering_key="customer-4711",
        ordering_seq=1,
        to_content_type=ContentType.objects.get_for_model(customer),
        to_object_id=str(customer.pk),
        related_content_type=ContentType.objects.get_for_model(MessageTemplate),
        related_object_id=str(template.pk),
        last_error="first\nsecond",
    )
    email = make_message(event, "booking_confirmation:email")
    sms = make_message(
        event, "booking_confirmation:sms", channel="sms", status="failed", to_address="+447911"
    )
    other = make_message(make_event(), "booking_confirmation:email", to_address="other@x.org")

    response = admin_client.get(change_url(event))
    assert response.status_code == 200
    body = response.content.decode()
    # Indented JSON, escaped, in a <pre>.
    assert '<pre class="outbox-context"' in body
    assert "{\n  &quot;ref&quot;: &quot;BK1&quot;,\n  &quot;lines&quot;: [\n    {\n" in body
    assert "&quot;sku&quot;: &quot;A&lt;1&gt;&quot;" in body
    assert "A<1>" not in body
    # The recipient's model has no admin: text only. The related template has one: a link.
    assert f"customer #{customer.pk}: John" in body
    template_url = reverse("admin:django_communication_messagetemplate_change", args=[template.pk])
    assert f'<a href="{template_url}">message template #{template.pk}: ' in body
    # Each message the event produced, linked, with channel, status and address.
    for message, text in ((email, "Email to john@example.com"), (sms, "SMS to +447911")):
        url = reverse("admin:django_communication_message_change", args=[message.pk])
        assert f'<a href="{url}">{text}</a>' in body
    assert "(Sent)" in body and "(Failed)" in body
    assert '<p class="outbox-sent">1 of 2 sent</p>' in body  # a partial fan-out, at a glance
    assert reverse("admin:django_communication_message_change", args=[other.pk]) not in body
    assert "booking-BK1-confirmed" in body
    assert "customer-4711" in body  # the ordering key
    # Read-only: no inputs for the fields, no save button.
    assert 'name="event_type"' not in body
    assert 'name="_save"' not in body


def test_next_attempt_is_shown_for_pending_events_only(admin_client):
    past, future = timezone.now() - timedelta(hours=1), timezone.now() + timedelta(minutes=5)
    due = make_event(available_at=past)
    backing_off = make_event(attempts=2, available_at=future, last_error="throttled")
    in_flight = make_event(attempts=1, claim_token=uuid.uuid4(), available_at=future)
    assert "Next attempt" in (body := admin_client.get(change_url(due)).content.decode())
    assert "due since" in body
    assert "not before" in admin_client.get(change_url(backing_off)).content.decode()
    assert "being sent now" in admin_client.get(change_url(in_flight)).content.decode()
    for status in (OutboxStatus.DEAD, OutboxStatus.DISPATCHED, OutboxStatus.CANCELLED):
        body = admin_client.get(change_url(make_event(status=status, available_at=past))).content
        # An old lease end means nothing for these: neither the field nor its label is shown.
        assert b"Next attempt" not in body and b"Available at" not in body


def test_retry_now_button_on_a_dead_events_page(admin_client, viewer_client):
    dead = make_event(status=OutboxStatus.DEAD, attempts=8, last_error="Gave up")
    pending = make_event()
    retry_url = reverse("admin:outbox_outboxevent_retry", args=[dead.pk])
    body = admin_client.get(change_url(dead)).content.decode()
    assert f'action="{retry_url}"' in body and "outbox-retry-now" in body
    assert "outbox-retry-now" not in admin_client.get(change_url(pending)).content.decode()
    # Without the retry permission: no button, and the URL refuses.
    assert "outbox-retry-now" not in viewer_client.get(change_url(dead)).content.decode()
    assert viewer_client.post(retry_url).status_code == 403
    assert admin_client.get(retry_url).status_code == 403  # a state change needs a POST
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.DEAD

    response = admin_client.post(retry_url, follow=True)
    assert response.redirect_chain[-1][0] == change_url(dead)
    assert flash(response) == [("success", "1 event will be sent again now.")]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (OutboxStatus.PENDING, 0)
    assert "outbox-retry-now" not in response.content.decode()


def test_detail_of_deleted_references_and_no_messages(admin_client, customer):
    ct = ContentType.objects.get_for_model(customer)
    event = make_event(to_content_type=ct, to_object_id="999999", context={})
    body = admin_client.get(change_url(event)).content.decode()
    assert "customer #999999 (deleted)" in body
    assert "None yet." in body


def test_add_is_refused(admin_client):
    assert admin_client.get(reverse("admin:outbox_outboxevent_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:outbox_outboxevent_add"), {"event_type": "x", "status": "pending"}
    )
    assert response.status_code == 403
    assert not OutboxEvent.objects.exists()


def test_post_to_change_page_changes_nothing(admin_client):
    event = make_event(status=OutboxStatus.DEAD, attempts=8, last_error="boom")
    before = OutboxEvent.objects.values().get(pk=event.pk)
    response = admin_client.post(
        change_url(event),
        {
            "event_type": "hacked",
            "status": "pending",
            "attempts": "0",
            "context": "{}",
            "last_error": "",
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    assert OutboxEvent.objects.values().get(pk=event.pk) == before


def test_nobody_deletes_events_unless_the_site_allows_it(admin_client, retrier_client, monkeypatch):
    event = make_event(status=OutboxStatus.DEAD)
    delete_url = reverse("admin:outbox_outboxevent_delete", args=[event.pk])
    assert retrier_client.get(delete_url).status_code == 403
    assert retrier_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert "deletelink" not in admin_client.get(change_url(event)).content.decode()
    assert OutboxEvent.objects.filter(pk=event.pk).exists()
    # The documented switch: allow_delete = True (in a subclass) lets superusers delete.
    monkeypatch.setattr(admin.site._registry[OutboxEvent], "allow_delete", True)
    assert "delete_selected" in action_names(admin_client.get(CHANGELIST))
    assert retrier_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not OutboxEvent.objects.filter(pk=event.pk).exists()


# --------------------------------------------------------------------------- actions


def test_superuser_sees_every_action(admin_client):
    make_event()
    names = action_names(admin_client.get(CHANGELIST))
    assert set(names) == {"retry_events", "discard_events"}  # no delete_selected


def test_retry_now(admin_client):
    past = timezone.now() - timedelta(hours=1)
    lease = timezone.now() + timedelta(minutes=5)
    dead = make_event(status=OutboxStatus.DEAD, attempts=8, last_error="Gave up", available_at=past)
    # A relay claimed it and died: the lease ran out, so the event may be taken over.
    expired = make_event(attempts=2, claim_token=uuid.uuid4(), available_at=past)
    # A relay is sending it right now: left alone, its messages may be on their way.
    in_flight = make_event(attempts=3, claim_token=uuid.uuid4(), available_at=lease)
    dispatched = make_event(status=OutboxStatus.DISPATCHED, attempts=1)
    cancelled = make_event(status=OutboxStatus.CANCELLED, last_error="Discarded by x")

    before = timezone.now()
    selected = (dead, expired, in_flight, dispatched, cancelled)
    response = run_action(admin_client, "retry_events", *selected)
    assert response.status_code == 200
    assert flash(response) == [
        ("success", "2 events will be sent again now."),
        ("warning", SKIPPED % "3 events were"),
    ]
    dead.refresh_from_db()
    assert dead.status == OutboxStatus.PENDING
    assert dead.attempts == 0
    assert dead.claim_token is None
    assert before <= dead.available_at <= timezone.now()
    assert dead.last_error == "Gave up"
    assert dead.updated_at >= before
    expired.refresh_from_db()
    assert (expired.status, expired.attempts, expired.claim_token) == ("pending", 2, None)
    assert before <= expired.available_at <= timezone.now()
    token, until = in_flight.claim_token, in_flight.available_at
    in_flight.refresh_from_db()
    assert (in_flight.attempts, in_flight.claim_token, in_flight.available_at) == (3, token, until)
    for event, status in ((dispatched, "dispatched"), (cancelled, "cancelled")):
        event.refresh_from_db()
        assert event.status == status
    assert cancelled.last_error == "Discarded by x"


def test_retry_now_on_only_final_events_is_an_error(admin_client):
    dispatched = make_event(status=OutboxStatus.DISPATCHED)
    response = run_action(admin_client, "retry_events", dispatched)
    assert flash(response) == [("error", SKIPPED % "1 event was")]


def test_discard(admin_client):
    expired = timezone.now() - timedelta(seconds=1)
    pending = make_event(claim_token=uuid.uuid4(), available_at=expired)
    dead = make_event(status=OutboxStatus.DEAD, last_error="boom")
    dispatched = make_event(status=OutboxStatus.DISPATCHED)
    in_flight = make_event(
        claim_token=uuid.uuid4(), available_at=timezone.now() + timedelta(minutes=5)
    )
    response = run_action(admin_client, "discard_events", pending, dead, dispatched, in_flight)
    assert flash(response) == [
        ("success", "2 events were discarded."),
        ("warning", SKIPPED % "2 events were"),
    ]
    for event in (pending, dead):
        event.refresh_from_db()
        assert event.status == OutboxStatus.CANCELLED
        assert event.last_error == "Discarded by admin"
        assert event.claim_token is None
    dispatched.refresh_from_db()
    assert dispatched.status == OutboxStatus.DISPATCHED
    in_flight.refresh_from_db()
    assert (in_flight.status, in_flight.last_error) == (OutboxStatus.PENDING, "")


def test_viewer_sees_no_action_and_cannot_run_one(viewer_client):
    dead = make_event(status=OutboxStatus.DEAD, attempts=8)
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    assert action_names(response) == []
    assert "Retry now" not in response.content.decode()
    assert viewer_client.get(change_url(dead)).status_code == 200

    for action in ("retry_events", "discard_events", "delete_selected"):
        run_action(viewer_client, action, dead)
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (OutboxStatus.DEAD, 8)
    assert viewer_client.post(change_url(dead), {"status": "pending"}).status_code == 403
    assert viewer_client.get(reverse("admin:outbox_outboxevent_add")).status_code == 403


def test_retry_permission_without_discard(retrier_client):
    dead = make_event(status=OutboxStatus.DEAD, attempts=8)
    other = make_event(status=OutboxStatus.DEAD, attempts=8)
    assert action_names(retrier_client.get(CHANGELIST)) == ["retry_events"]

    response = run_action(retrier_client, "discard_events", other)
    assert ("warning", "No action selected.") in flash(response)
    other.refresh_from_db()
    assert other.status == OutboxStatus.DEAD

    response = run_action(retrier_client, "retry_events", dead)
    assert flash(response) == [("success", "1 event will be sent again now.")]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (OutboxStatus.PENDING, 0)


# --------------------------------------------------------------------------- operations


def test_operations_take_ordered_and_sliced_querysets():
    events = [make_event(status=OutboxStatus.DEAD) for _ in range(3)]
    assert retry_now(OutboxEvent.objects.order_by("created_at")[:2]) == 2
    assert OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count() == 2
    assert discard(OutboxEvent.objects.all(), by="ops") == 3
    assert set(OutboxEvent.objects.values_list("last_error", flat=True)) == {"Discarded by ops"}
    assert retry_now(OutboxEvent.objects.filter(pk=events[0].pk)) == 0


def test_dead_event_retried_from_admin_then_dispatched(
    admin_client, comm_config, templates, customer
):
    """End to end: the relay kills an event, the admin retries it, the relay sends it."""
    with override_settings(OUTBOX={"RULES": RULES, "WAKE_ON_COMMIT": False}), transaction.atomic():
        emit("booking.confirmed", to=customer, context={"ref": "BK1"})
    with override_settings(OUTBOX={"RULES": {}, "WAKE_ON_COMMIT": False}):  # rule removed
        assert drain().dead == 1
    event = OutboxEvent.objects.get()
    assert event.status == OutboxStatus.DEAD and "No rule" in event.last_error

    run_action(admin_client, "retry_events", event)
    with override_settings(OUTBOX={"RULES": RULES, "WAKE_ON_COMMIT": False}):
        assert drain().dispatched == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.DISPATCHED, 1)

    message = event.messages().get()
    body = admin_client.get(change_url(event)).content.decode()
    url = reverse("admin:django_communication_message_change", args=[message.pk])
    assert f'<a href="{url}">Email to john@example.com</a>' in body
