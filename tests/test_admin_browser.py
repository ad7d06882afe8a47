"""The admin in headless Chromium: log in, filter the message log, see a template's preview."""

from __future__ import annotations

import re

import pytest

from django_communication.models import CommunicationSettings, Message
from tests.browser import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def messages(transactional_db):
    sent = Message.objects.create(
        channel="email",
        status="sent",
        message_type="transactional",
        to_address="sent@example.com",
        subject="Booking confirmed",
        provider="console",
    )
    failed = Message.objects.create(
        channel="sms",
        status="failed",
        message_type="reminder",
        to_address="+447911123456",
        body_text="Reminder",
        provider="console",
        error="Throttled",
    )
    return sent, failed


def test_filter_message_log_by_status(admin_page, live_server, messages):
    page = admin_page
    page.goto(f"{live_server.url}/admin/django_communication/message/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2

    filters = page.locator("#changelist-filter")
    filters.locator("details[data-filter-title='status'] a", has_text="Failed").click()
    page.wait_for_url("**status__exact=failed**")
    assert rows.count() == 1
    assert "+447911123456" in rows.first.inner_text()
    assert "sent@example.com" not in page.locator("#result_list").inner_text()
    save_screenshot(page, "admin-message-log-failed")

    # The read-only change page: no save button.
    rows.first.locator("th a").click()
    page.wait_for_selector("text=Throttled")
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.deletelink").count() == 0  # the audit log is read-only


def test_template_change_page_shows_rendered_preview(
    make_template, admin_page, live_server, transactional_db
):
    row = make_template(
        "booking_confirmation",
        name="Booking confirmation",
        email_subject="Booking {{ booking.ref }} confirmed",
        email_body_text="Hello {{ name }}, seat {{ seat }}",
        email_body_html=(
            "<h1 id='greeting'>Hello {{ name }}</h1><script>document.title='owned'</script>"
        ),
        sms_body="Booking {{ booking.ref }}: see you, {{ name }}",
        sample_context={"name": "<Ann>", "booking": {"ref": "BK-42"}},
    )
    page = admin_page
    page.goto(f"{live_server.url}/admin/django_communication/messagetemplate/")
    page.click("text=booking_confirmation")
    page.wait_for_url(f"**/{row.pk}/change/")

    preview = page.locator(".comm-preview")
    assert "Booking BK-42 confirmed" in preview.inner_text()
    assert "Booking BK-42: see you, <Ann>" in preview.inner_text()
    # The variable the sample context lacks is named under the field that outputs it.
    missing = page.locator("[data-field=email_body_text] .comm-preview-missing")
    assert missing.is_visible() and missing.inner_text() == "Not in the sample context: seat"
    assert page.locator(".comm-preview-missing").count() == 1

    # The HTML body renders inside the sandboxed iframe, autoescaped, with its script inert.
    frame = page.frame_locator(".comm-preview iframe")
    assert frame.locator("#greeting").inner_text() == "Hello <Ann>"
    assert page.title() != "owned"
    preview.scroll_into_view_if_needed()  # off-screen iframes are not painted in screenshots
    save_screenshot(page, "admin-template-preview")


def test_settings_offer_each_channels_providers_and_check_the_origination_number(
    admin_page, live_server, transactional_db
):
    page = admin_page
    page.goto(f"{live_server.url}/admin/django_communication/communicationsettings/")
    sms = page.locator("select#id_sms_provider option")
    assert sms.all_inner_texts() == ["console", "memory", "sns", "twilio"]
    voice = page.locator("select#id_voice_provider option")
    assert voice.all_inner_texts() == ["console", "memory", "twilio"]
    email = page.locator("select#id_email_provider option")
    assert email.all_inner_texts() == ["console", "django", "memory", "ses"]
    labels = page.locator("label").all_inner_texts()
    assert "SES region:" in labels and "SMS provider:" in labels
    assert "Voice caller ID:" in labels and "Twilio auth token:" in labels
    assert "Ses region:" not in labels and "Sms provider:" not in labels

    page.select_option("select#id_sms_provider", "sns")
    page.fill("#id_sms_origination_number", "07911 123456")
    page.click("input[name=_save]")
    error = page.locator(".field-sms_origination_number .errorlist")
    error.wait_for()
    assert error.inner_text().startswith(
        "Enter the number in E.164 form, such as +14155552671: it has no country code"
    )
    assert CommunicationSettings.objects.get().sms_origination_number == ""
    save_screenshot(page, "admin-settings-origination-number")

    page.fill("#id_sms_origination_number", "+44 7911 123456")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert "changed successfully" in page.locator("ul.messagelist li").inner_text()
    config = CommunicationSettings.objects.get()
    assert (config.sms_provider, config.sms_origination_number) == ("sns", "+447911123456")
