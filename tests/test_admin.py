"""The admin: template preview, the read-only message log, and write-only secrets in settings."""

from __future__ import annotations

import html

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from django_communication.admin.templates import render_preview
from django_communication.models import CommunicationSettings, Message, MessageTemplate

pytestmark = pytest.mark.django_db

SETTINGS_URL = "admin:django_communication_communicationsettings_change"


def template_url(row: MessageTemplate) -> str:
    return reverse("admin:django_communication_messagetemplate_change", args=[row.pk])


MESSAGES_URL = "/admin/django_communication/message/"


def message_url(message: Message) -> str:
    return reverse("admin:django_communication_message_change", args=[message.pk])


@pytest.fixture
def unsafe_template(make_template):
    """Markup in the subject's newline, the HTML and the sample context that the preview must
    show escaped."""
    return make_template(
        "welcome",
        email_subject="Hi {{ name }}\nand welcome",
        email_body_text="Hello {{ name }}, your code is {{ code }}.",
        email_body_html='<p>Hello {{ name }}</p><script>alert("owned")</script>',
        sms_body="SMS for {{ name }}: {{ code }}",
        sample_context={"name": "<b>Ann</b>", "code": 4711},
    )


def make_message(**fields) -> Message:
    defaults = {
        "channel": "email",
        "status": "sent",
        "message_type": "transactional",
        "to_address": "ann@example.com",
        "subject": "Your booking",
        "body_text": "Text body",
        "provider": "memory",
        "provider_message_id": "prov-1",
    }
    return Message.objects.create(**{**defaults, **fields})


# --------------------------------------------------------------------------- templates


def test_template_changelist_lists_templates(admin_client, unsafe_template):
    response = admin_client.get(reverse("admin:django_communication_messagetemplate_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "welcome" in content
    assert "column-message_type" in content
    assert "column-updated_at" in content


def test_template_search_and_filter(make_template, admin_client, unsafe_template):
    make_template("other", name="Other", is_active=False, sms_body="x")
    url = reverse("admin:django_communication_messagetemplate_changelist")
    response = admin_client.get(url, {"q": "welc"})
    assert list(response.context["cl"].result_list) == [unsafe_template]
    response = admin_client.get(url, {"is_active__exact": "0"})
    assert [row.key for row in response.context["cl"].result_list] == ["other"]


def test_template_preview_renders_sample_context(admin_client, unsafe_template):
    response = admin_client.get(template_url(unsafe_template))
    assert response.status_code == 200
    content = response.content.decode()
    # Subject flattened to one line as send() does; text fields are not autoescaped by the
    # template engine, so the admin escapes them on display.
    assert "Hi &lt;b&gt;Ann&lt;/b&gt; and welcome" in content
    assert "Hello &lt;b&gt;Ann&lt;/b&gt;, your code is 4711." in content
    assert "SMS for &lt;b&gt;Ann&lt;/b&gt;: 4711" in content


def test_template_preview_html_is_sandboxed_and_escaped(admin_client, unsafe_template):
    content = admin_client.get(template_url(unsafe_template)).content.decode()
    # The HTML body is autoescaped by the renderer, then escaped again into a sandboxed srcdoc.
    rendered = '<p>Hello &lt;b&gt;Ann&lt;/b&gt;</p><script>alert("owned")</script>'
    assert 'sandbox="" referrerpolicy="no-referrer"' in content
    assert f'srcdoc="{html.escape(rendered)}"' in content
    assert '<script>alert("owned")</script>' not in content
    assert "<b>Ann</b>" not in content


def test_template_preview_shows_render_errors(make_template, admin_client, db):
    row = make_template(
        "broken",
        name="Broken",
        email_subject="{% if %}",  # does not compile (saved without clean())
        email_body_text='{% include "no/such/template.txt" %}',  # fails at render time
        sms_body="fine {{ name }}",
        sample_context={"name": "Bo"},
    )
    response = admin_client.get(template_url(row))
    assert response.status_code == 200
    content = response.content.decode()
    assert "does not compile" in content
    assert "failed to render" in content
    assert "no/such/template.txt" in content
    assert "fine Bo" in content


def test_template_preview_with_a_non_object_sample_context(db):
    row = MessageTemplate(key="list", name="List", sms_body="x", sample_context=[1, 2])
    [(field, _, rendered, error)] = render_preview(row)
    assert field == "sms_body"
    assert rendered is None
    assert "must be a JSON object" in error


def test_template_add_page_has_no_preview_yet(admin_client):
    response = admin_client.get(reverse("admin:django_communication_messagetemplate_add"))
    assert response.status_code == 200
    assert "Save the template to see a preview." in response.content.decode()


def test_template_with_bad_syntax_cannot_be_saved(admin_client, unsafe_template):
    data = {
        "key": "welcome",
        "name": "Welcome",
        "message_type": "transactional",
        "is_active": "on",
        "email_subject": "{% if %}",
        "email_body_text": "",
        "email_body_html": "",
        "sms_body": "hi",
        "sample_context": "{}",
    }
    response = admin_client.post(template_url(unsafe_template), data)
    assert response.status_code == 200  # the form again, with the error
    assert "does not compile" in response.content.decode()
    unsafe_template.refresh_from_db()
    assert unsafe_template.email_subject == "Hi {{ name }}\nand welcome"


# --------------------------------------------------------------------------- messages


def test_message_changelist_columns_filters_and_search(admin_client):
    sent = make_message(subject="Booking BK1 confirmed")
    failed = make_message(status="failed", channel="sms", to_address="+447911123456", subject="")
    url = reverse("admin:django_communication_message_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    for column in ("created_at", "channel", "direction", "status", "to_address", "provider"):
        assert f"column-{column}" in content
    assert set(response.context["cl"].result_list) == {sent, failed}
    assert list(admin_client.get(url, {"status__exact": "failed"}).context["cl"].result_list) == [
        failed
    ]
    assert list(admin_client.get(url, {"channel__exact": "email"}).context["cl"].result_list) == [
        sent
    ]
    assert list(admin_client.get(url, {"q": "BK1"}).context["cl"].result_list) == [sent]
    assert list(admin_client.get(url, {"q": "+447911"}).context["cl"].result_list) == [failed]
    assert "toplinks" in content  # the created_at date hierarchy


def test_message_admin_has_no_add(admin_client):
    response = admin_client.get(reverse("admin:django_communication_message_changelist"))
    assert reverse("admin:django_communication_message_add") not in response.content.decode()
    assert admin_client.get(reverse("admin:django_communication_message_add")).status_code == 403


def test_message_change_page_is_read_only(admin_client):
    message = make_message(body_html="<p>Hi</p><script>alert(1)</script>")
    response = admin_client.get(message_url(message))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="_save"' not in content
    assert 'name="to_address"' not in content
    assert "ann@example.com" in content
    assert "<script>alert(1)</script>" not in content
    assert 'sandbox=""' in content

    response = admin_client.post(
        message_url(message), {"to_address": "evil@example.com", "status": "delivered"}
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert (message.to_address, message.status) == ("ann@example.com", "sent")


def test_message_links_to_recipient_and_related_object(admin_client, admin_user, booking):
    message = make_message(
        recipient_content_type=ContentType.objects.get_for_model(admin_user),
        recipient_object_id=str(admin_user.pk),
        related_content_type=ContentType.objects.get_for_model(booking),
        related_object_id=str(booking.pk),
    )
    content = admin_client.get(message_url(message)).content.decode()
    user_url = reverse("admin:auth_user_change", args=[admin_user.pk])
    assert f'<a href="{user_url}">user #{admin_user.pk}: {admin_user}</a>' in content
    # The test app's Booking has no admin: its name, without a link.
    assert f"booking #{booking.pk}: {booking}" in content

    booking.delete()
    content = admin_client.get(message_url(message)).content.decode()
    assert f"booking #{message.related_object_id} (deleted)" in content


def test_nobody_deletes_messages_unless_the_site_allows_it(
    admin_client, client, django_user_model, monkeypatch
):
    message = make_message()
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_communication")
    )
    client.force_login(staff)
    delete_url = reverse("admin:django_communication_message_delete", args=[message.pk])

    assert client.get(message_url(message)).status_code == 200  # may view
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Message.objects.filter(pk=message.pk).exists()

    # The audit log is read-only for superusers too: no delete page, action or button.
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get(MESSAGES_URL).content.decode()
    assert "deletelink" not in admin_client.get(message_url(message)).content.decode()
    assert Message.objects.filter(pk=message.pk).exists()

    # The documented switch: allow_delete = True (in a subclass) lets superusers delete.
    monkeypatch.setattr(admin.site._registry[Message], "allow_delete", True)
    assert "deletelink" in admin_client.get(message_url(message)).content.decode()
    assert client.get(delete_url).status_code == 403  # still not staff
    admin_client.post(delete_url, {"post": "yes"})
    assert not Message.objects.filter(pk=message.pk).exists()


# --------------------------------------------------------------------------- settings


def settings_data(**overrides) -> dict[str, str]:
    data = {
        "default_channel": "email",
        "email_provider": "memory",
        "email_from_address": "shop@example.com",
        "email_from_name": "",
        "email_reply_to": "",
        "sms_provider": "memory",
        "sms_sender_id": "",
        "sms_origination_number": "",
        "ses_region": "eu-west-1",
        "ses_configuration_set": "",
        "ses_access_key_id": "AKIAEXAMPLE",
        "ses_secret_access_key": "",
        "sns_region": "",
        "sns_access_key_id": "",
        "sns_secret_access_key": "",
        "voice_provider": "memory",
        "voice_caller_id": "",
        "twilio_account_sid": "",
        "twilio_auth_token": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def stored_secret(db):
    config = CommunicationSettings.get_solo()
    config.ses_access_key_id = "AKIAEXAMPLE"
    config.ses_secret_access_key = "s3cr3t-ses-key-value"
    config.sns_secret_access_key = "s3cr3t-sns-key-value"
    config.twilio_auth_token = "s3cr3t-twilio-token"
    config.save()
    return config


def test_settings_page_never_shows_secrets(admin_client, stored_secret):
    response = admin_client.get(reverse(SETTINGS_URL))
    assert response.status_code == 200
    content = response.content.decode()
    assert "s3cr3t" not in content
    assert 'type="password" name="ses_secret_access_key"' in content
    assert 'type="password" name="twilio_auth_token"' in content
    assert "A value is stored" in content
    # Each channel offers the providers that can send on it.
    form = response.context["adminform"].form
    assert [c for c, _ in form.fields["email_provider"].choices] == [
        "console",
        "django",
        "memory",
        "ses",
    ]
    assert [c for c, _ in form.fields["sms_provider"].choices] == [
        "console",
        "memory",
        "sns",
        "twilio",
    ]
    assert [c for c, _ in form.fields["voice_provider"].choices] == ["console", "memory", "twilio"]
    assert '<select name="sms_provider"' in content
    for label in ("SES region", "SMS provider", "SNS access key ID", "SMS origination number"):
        assert f">{label}:</label>" in content
    assert "Ses region" not in content and "Sms provider" not in content


def test_settings_blank_secret_keeps_the_stored_value(admin_client, stored_secret):
    response = admin_client.post(reverse(SETTINGS_URL), settings_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    config = CommunicationSettings.objects.get()
    assert config.ses_region == "eu-west-1"
    assert config.ses_secret_access_key == "s3cr3t-ses-key-value"
    assert config.sns_secret_access_key == "s3cr3t-sns-key-value"
    assert config.twilio_auth_token == "s3cr3t-twilio-token"


def test_settings_twilio_token_is_replaced_and_cleared_like_the_aws_keys(
    admin_client, stored_secret
):
    admin_client.post(reverse(SETTINGS_URL), settings_data(twilio_auth_token="new-token"))
    assert CommunicationSettings.objects.get().twilio_auth_token == "new-token"
    admin_client.post(reverse(SETTINGS_URL), settings_data(clear_twilio_auth_token="on"))
    assert CommunicationSettings.objects.get().twilio_auth_token == ""


def test_settings_voice_caller_id_must_be_e164(admin_client, stored_secret):
    response = admin_client.post(reverse(SETTINGS_URL), settings_data(voice_caller_id="12"))
    assert response.status_code == 200
    assert "voice_caller_id" in response.context["adminform"].form.errors
    admin_client.post(reverse(SETTINGS_URL), settings_data(voice_caller_id="+1 415 555 2671"))
    assert CommunicationSettings.objects.get().voice_caller_id == "+14155552671"


def test_settings_new_secret_replaces_and_clear_removes(admin_client, stored_secret):
    admin_client.post(reverse(SETTINGS_URL), settings_data(ses_secret_access_key="new-value"))
    config = CommunicationSettings.objects.get()
    assert config.ses_secret_access_key == "new-value"
    assert config.sns_secret_access_key == "s3cr3t-sns-key-value"

    admin_client.post(reverse(SETTINGS_URL), settings_data(clear_sns_secret_access_key="on"))
    config = CommunicationSettings.objects.get()
    assert config.ses_secret_access_key == "new-value"
    assert config.sns_secret_access_key == ""


def test_settings_new_secret_and_clear_together_is_an_error(admin_client, stored_secret):
    response = admin_client.post(
        reverse(SETTINGS_URL),
        settings_data(ses_secret_access_key="new-value", clear_ses_secret_access_key="on"),
    )
    assert response.status_code == 200
    assert "not both" in response.content.decode()
    assert "new-value" not in response.content.decode()
    assert CommunicationSettings.objects.get().ses_secret_access_key == "s3cr3t-ses-key-value"


def test_settings_rejects_unknown_provider(admin_client, stored_secret):
    data = settings_data(sms_provider="carrier-pigeon")
    response = admin_client.post(reverse(SETTINGS_URL), data)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Select a valid choice. carrier-pigeon is not one of the available choices." in content
    assert "s3cr3t" not in content
    assert CommunicationSettings.objects.get().sms_provider == "console"
    # An email-only provider is no choice for SMS.
    response = admin_client.post(reverse(SETTINGS_URL), settings_data(sms_provider="ses"))
    assert "Select a valid choice. ses is not one" in response.content.decode()


def test_settings_keeps_showing_a_stored_provider_that_no_longer_exists(
    admin_client, stored_secret
):
    CommunicationSettings.objects.update(sms_provider="carrier-pigeon")
    response = admin_client.get(reverse(SETTINGS_URL))
    form = response.context["adminform"].form
    assert form.initial["sms_provider"] == "carrier-pigeon"
    assert "carrier-pigeon" in [c for c, _ in form.fields["sms_provider"].choices]
    response = admin_client.post(
        reverse(SETTINGS_URL), settings_data(sms_provider="carrier-pigeon")
    )
    assert "Unknown provider" in response.content.decode()


@pytest.mark.parametrize(
    ("number", "saved", "error"),
    [
        ("+1 415 555 2671", "+14155552671", None),
        ("+447911123456", "+447911123456", None),
        ("", "", None),
        ("07911 123456", None, "it has no country code"),
        ("+44 123", None, "it has too few digits for a +44 number"),
        ("+15550100", None, "it lacks an area code"),
    ],
)
def test_settings_origination_number_must_be_e164(
    admin_client, stored_secret, number, saved, error
):
    response = admin_client.post(
        reverse(SETTINGS_URL), settings_data(sms_origination_number=number)
    )
    config = CommunicationSettings.objects.get()
    if error is None:
        assert response.status_code == 302, response.context["adminform"].form.errors
        assert config.sms_origination_number == saved
    else:
        assert response.status_code == 200
        [message] = response.context["adminform"].form.errors["sms_origination_number"]
        assert message.startswith("Enter the number in E.164 form, such as +14155552671: ")
        assert error in message
        assert config.sms_origination_number == ""
