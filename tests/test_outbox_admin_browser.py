"""The outbox viewer in a real browser: filter, open an event, retry it, and a phone-width list."""

from __future__ import annotations

import re

import pytest

from django_communication.models import Message
from outbox.models import OutboxEvent, OutboxStatus
from tests.browser import save_screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
def events(transactional_db):
    dead = OutboxEvent.objects.create(
        event_type="booking.confirmed",
        status=OutboxStatus.DEAD,
        attempts=8,
        context={"ref": "BK1", "customer": {"name": "John", "tier": "gold"}},
        last_error="Gave up after 8 attempts: booking_confirmation (email): provider timed out",
    )
    Message.objects.create(
        channel="email",
        status="failed",
        to_address="john@example.com",
        idempotency_key=f"{dead.message_key_prefix}booking_confirmation:email",
    )
    OutboxEvent.objects.create(event_type="booking.cancelled", context={"ref": "BK2"})
    OutboxEvent.objects.create(
        event_type="invoice.paid", status=OutboxStatus.DISPATCHED, attempts=1, context={}
    )
    return dead


def test_filter_open_and_retry_a_dead_event(admin_page, live_server, events):
    page = admin_page
    page.goto(f"{live_server.url}/admin/outbox/outboxevent/")
    assert page.locator("#result_list tbody tr").count() == 3

    page.locator("#changelist-filter a", has_text="Dead").click()
    page.wait_for_url(re.compile(r"status__exact=dead"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "provider timed out" in rows.first.inner_text()
    save_screenshot(page, "outbox-admin-list-dead")

    rows.first.locator("th a").click()
    page.wait_for_url(re.compile(rf"/admin/outbox/outboxevent/{events.pk}/change/"))
    context = page.locator("pre.outbox-context").inner_text()
    assert '"customer": {\n    "name": "John",' in context
    message_link = page.locator(".outbox-messages a")
    assert message_link.inner_text() == "Email to john@example.com"
    assert page.locator("input[name=_save]").count() == 0
    # Read-only history: no delete button; a dead event has no "next attempt" (an old lease end).
    assert page.locator("a.deletelink").count() == 0
    assert page.get_by_text("Next attempt").count() == 0
    assert page.get_by_text("Available at").count() == 0
    assert page.locator("button.outbox-retry-now").is_visible()
    save_screenshot(page, "outbox-admin-detail")

    message_link.click()
    page.wait_for_url(re.compile(r"/admin/django_communication/message/.+/change/"))
    page.go_back()

    # "Retry now" on the event's own page.
    page.locator("button.outbox-retry-now").click()
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert success.inner_text() == "1 event will be sent again now."
    page.wait_for_url(re.compile(rf"/admin/outbox/outboxevent/{events.pk}/change/$"))
    events.refresh_from_db()
    assert (events.status, events.attempts) == (OutboxStatus.PENDING, 0)
    # Pending now: no button any more, and the next attempt is said in words.
    assert page.locator("button.outbox-retry-now").count() == 0
    assert "due since" in page.locator(".field-next_attempt").inner_text()
    save_screenshot(page, "outbox-admin-retried")

    # The list action does the same for a selection; no bulk delete among the actions.
    OutboxEvent.objects.filter(pk=events.pk).update(status=OutboxStatus.DEAD)
    page.goto(f"{live_server.url}/admin/outbox/outboxevent/?status__exact=dead")
    options = page.locator("select[name=action] option").all_inner_texts()
    assert "Retry now" in options and not any("Delete" in text for text in options)
    page.locator("#result_list tbody input.action-select").first.check()
    page.select_option("select[name=action]", "retry_events")
    page.locator("button[name=index]").click()
    page.locator("ul.messagelist li.success").wait_for()
    # Still on the "dead" filter, which is now empty.
    assert page.locator("#result_list tbody tr").count() == 0


def test_last_error_is_readable_in_the_list_at_1400_px(admin_page, live_server, events):
    error = (
        "Gave up after 8 attempts: booking_confirmation (email): ses: EndpointConnectionError: "
        'Could not connect to the endpoint URL: "https://email.eu-west-1.amazonaws.com/v2/email/'
        'outbound-emails" (retryable)'
    )
    OutboxEvent.objects.update(last_error=error)
    page = admin_page
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/outbox/outboxevent/")
    cell = page.locator("#result_list tbody td.field-last_error_preview").first
    box = cell.bounding_box()
    results = page.locator("#changelist .results").bounding_box()
    # The whole cell is on screen, inside the results box (no sideways scrolling to find it),
    # wide enough for whole phrases, and shows the error whole.
    assert box["x"] >= results["x"] and box["x"] + box["width"] <= results["x"] + results["width"]
    assert box["x"] + box["width"] <= 1400 and box["width"] >= 250
    assert cell.inner_text() == error
    assert (
        page.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return r.scrollWidth - r.clientWidth; })()"
        )
        <= 0
    )
    save_screenshot(page, "outbox-admin-list-1400")


def test_list_at_phone_width(admin_page, live_server, events):
    page = admin_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/admin/outbox/outboxevent/")
    assert page.locator("#result_list tbody tr").count() == 3
    # The health figures wrap into rows of tiles above the results.
    tiles = page.locator("section.outbox-health li")
    assert tiles.count() == 7
    assert tiles.first.is_visible()
    assert tiles.first.bounding_box()["y"] < page.locator("#changelist").bounding_box()["y"]
    # The responsive admin CSS still applies: the page scrolls no wider than the screen, apart
    # from the results table, which the admin lets scroll sideways inside its own box.
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    save_screenshot(page, "outbox-admin-list-phone")

    page.goto(f"{live_server.url}/admin/outbox/outboxevent/{events.pk}/change/")
    assert page.locator("pre.outbox-context").is_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    save_screenshot(page, "outbox-admin-detail-phone")
