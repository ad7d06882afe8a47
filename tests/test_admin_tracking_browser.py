"""The tracking admin in headless Chromium: a message's status history, suppressing an address
by hand and finding it again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_communication.models import Suppression
from tests.browser import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_message_page_shows_its_status_history_in_order(bounced_message, admin_page, live_server):
    message = bounced_message("<b>not bold</b>")
    page = admin_page
    page.goto(
        live_server.url + reverse("admin:django_communication_message_change", args=[message.pk])
    )
    history = page.locator("#events-group")
    history.wait_for()
    text = history.inner_text()
    assert text.index("Delivery") < text.index("Permanent / General")
    # Each raw payload opens on a click, shown as text, never as markup.
    payload = history.locator("details").last
    assert not payload.locator("pre").is_visible()
    payload.locator("summary").click()
    shown = payload.locator("pre")
    assert shown.is_visible()
    assert '"eventType": "Bounce"' in shown.inner_text()
    assert "<b>not bold</b>" in shown.inner_text()
    assert history.locator("b", has_text="not bold").count() == 0
    assert page.locator("input[name=_save]").count() == 0
    save_screenshot(page, "admin-message-status-history")


def test_staff_suppress_an_address_by_hand_and_find_it(admin_page, live_server):
    page = admin_page
    page.goto(live_server.url + reverse("admin:django_communication_suppression_add"))
    page.select_option("select[name=channel]", "email")
    page.fill("input[name=address]", "Someone@Example.com")
    page.select_option("select[name=reason]", "manual")
    page.click("input[name=_save]")
    page.wait_for_url("**/suppression/")
    assert Suppression.objects.get().address == "someone@example.com"

    page.fill("#searchbar", "someone")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=someone**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "someone@example.com" in rows.first.inner_text()
    save_screenshot(page, "admin-suppression-list")
