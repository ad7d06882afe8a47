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
    save_screenshot(page, "outbox-admin-detail")

    message_link.click()
    page.wait_for_url(re.compile(r"/admin/django_communication/message/.+/change/"))
    page.go_back()

    page.goto(f"{live_server.url}/admin/outbox/outboxevent/?status__exact=dead")
    page.locator("#result_list tbody input.action-select").first.check()
    page.select_option("select[name=action]", "retry_events")
    page.locator("button[name=index]").click()
    success = page.locator("ul.messagelist li.success")
    success.wait_for()
    assert success.inner_text() == "1 event will be sent again now."

    events.refresh_from_db()
    assert events.status == OutboxStatus.PENDING
    assert events.attempts == 0
    # Still on the "dead" filter, which is now empty.
    assert page.locator("#result_list tbody tr").count() == 0
    save_screenshot(page, "outbox-admin-retried")


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
