"""Unsubscribe links and List-Unsubscribe headers (RFC 8058), the unsubscribe view."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.core import mail

from django_communication import RecipientOptedOutError, optout_tokens, send
from django_communication.models import OptOut
from django_communication.optout import unsubscribe_url
from django_communication.optout_tokens import make_token
from django_communication.providers import memory
from django_communication.providers.base import stable_message_id

SITE = "https://shop.example.com"


@pytest.fixture(autouse=True)
def _one_day(monkeypatch):
    """Tokens carry their issue day: keep the day fixed, so a link built by the test is the
    one in the message even across midnight."""
    frozen = time.time()
    monkeypatch.setattr(optout_tokens, "time", SimpleNamespace(time=lambda: frozen))


@pytest.fixture
def site(settings):
    settings.COMMUNICATION = {**settings.COMMUNICATION, "SITE_URL": SITE + "/"}


def path_of(url: str) -> str:
    assert url.startswith(SITE + "/communication/unsubscribe/")
    return url[len(SITE) :]


def test_announcement_email_carries_link_and_headers(comm_config, site, customer, news):
    message = send(to=customer, template_key="news")

    url = unsubscribe_url("email", "john@example.com", "announcement")
    assert message.body_text == f"Hello. Unsubscribe: {url}"
    assert message.extra_headers == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert memory.messages == [message]


@pytest.mark.parametrize("message_type", ["transactional", "alert"])
def test_messages_that_cannot_be_opted_out_of_carry_neither(
    comm_config, site, customer, news, message_type
):
    message = send(to=customer, template_key="news", message_type=message_type, channel="email")
    assert message.body_text == "Hello. Unsubscribe: "
    assert message.extra_headers == {}


def test_without_site_url_there_is_no_link(comm_config, customer, news):
    message = send(to=customer, template_key="news")
    assert message.extra_headers == {}
    assert message.body_text == "Hello. Unsubscribe: "


def test_django_provider_sets_the_headers(comm_config, site, customer, news):
    comm_config.email_provider = "django"
    comm_config.save()
    send(to=customer, template_key="news")
    [email] = mail.outbox
    url = unsubscribe_url("email", "john@example.com", "announcement")
    assert email.extra_headers["List-Unsubscribe"] == f"<{url}>"
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in email.message().as_string()


def test_ses_provider_sends_the_headers(comm_config, site, customer, news, moto_server):
    import boto3

    boto3.client("sesv2", region_name="eu-west-1").create_email_identity(
        EmailIdentity="shop@example.com"
    )
    comm_config.email_provider = "ses"
    comm_config.ses_region = "eu-west-1"
    comm_config.save()

    message = send(to=customer, template_key="news")

    [call] = moto_server.ses_send_email_calls()
    url = unsubscribe_url("email", "john@example.com", "announcement")
    assert call["Content"]["Simple"]["Headers"] == [
        {"Name": "List-Unsubscribe", "Value": f"<{url}>"},
        {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        {"Name": "X-Message-Key", "Value": stable_message_id(message)},
    ]


def test_ses_provider_sends_no_headers_for_transactional(comm_config, site, customer, moto_server):
    import boto3

    boto3.client("sesv2", region_name="eu-west-1").create_email_identity(
        EmailIdentity="shop@example.com"
    )
    comm_config.email_provider = "ses"
    comm_config.ses_region = "eu-west-1"
    comm_config.save()
    message = send(to=customer, subject="Receipt", body_text="Paid")
    [call] = moto_server.ses_send_email_calls()
    # No List-Unsubscribe: only the message's stable id.
    assert call["Content"]["Simple"]["Headers"] == [
        {"Name": "X-Message-Key", "Value": stable_message_id(message)}
    ]


def test_get_shows_a_confirmation_and_changes_nothing(client, comm_config, site):
    url = unsubscribe_url("email", "john@example.com", "announcement")
    response = client.get(path_of(url))
    assert response.status_code == 200
    page = response.content.decode()
    assert "j•••@e•••.com" in page and "<form" in page
    assert "john" not in page  # whoever holds the link learns no address
    assert not OptOut.objects.exists()


def test_one_click_post_opts_out(client, comm_config, site, customer, news):
    url = unsubscribe_url("email", "john@example.com", "announcement")
    client.handler.enforce_csrf_checks = True  # mail clients send no CSRF token
    response = client.post(path_of(url), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    opt_out = OptOut.objects.get()
    assert (opt_out.channel, opt_out.address, opt_out.message_type, opt_out.source) == (
        "email",
        "john@example.com",
        "announcement",
        "one-click",
    )
    with pytest.raises(RecipientOptedOutError):
        send(to=customer, template_key="news")
    # Twice is fine.
    assert client.post(path_of(url), {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert OptOut.objects.count() == 1


def test_the_page_button_opts_out(client, comm_config, site):
    url = unsubscribe_url("email", "john@example.com", "reminder")
    assert client.post(path_of(url), {"confirm": "1"}).status_code == 200
    assert OptOut.objects.get().source == "link"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        make_token("email", "john@example.com", "announcement")[:-3] + "xyz",
        make_token("email", "john@example.com", "transactional"),
        make_token("fax", "john@example.com", "announcement"),
    ],
)
def test_forged_or_useless_tokens_are_refused(client, comm_config, site, token):
    for method in (client.get, client.post):
        response = method(f"/communication/unsubscribe/{token}/")
        assert response.status_code == 400
    assert not OptOut.objects.exists()


def test_token_signed_with_another_salt_is_refused(client, db):
    from django.core import signing

    token = signing.dumps(["email", "john@example.com", "announcement"])
    assert client.post(f"/communication/unsubscribe/{token}/").status_code == 400
    assert not OptOut.objects.exists()
