"""Unsubscribe tokens are opaque, authenticated and expire (issue 18): the address cannot be
read from the URL, nor from the pages the URL opens; an altered, foreign or too old token is
refused; links made before a SECRET_KEY rotation keep working while the old key is a fallback;
legacy signed links work only while allowed."""

from __future__ import annotations

import base64
import re
from types import SimpleNamespace

import pytest
from django.core import signing
from django.test import override_settings

from django_communication import optout_tokens
from django_communication.checks import check_settings
from django_communication.exceptions import (
    CommunicationError,
    ExpiredUnsubscribeToken,
    InvalidUnsubscribeToken,
)
from django_communication.models import OptOut
from django_communication.optout import masked, unsubscribe_url
from django_communication.optout_tokens import make_token, read_token

SITE = "https://shop.example.com"
ADDRESS = "john.smith@example.com"
DAY = 20_000


@pytest.fixture(autouse=True)
def site(settings):
    settings.COMMUNICATION = {"SITE_URL": SITE}


@pytest.fixture
def day(monkeypatch):
    """The tokens' calendar, moved by hand: ``day[0]`` is today (days since 1970)."""
    today = [DAY]
    clock = SimpleNamespace(time=lambda: today[0] * optout_tokens.SECONDS_PER_DAY + 3600)
    monkeypatch.setattr(optout_tokens, "time", clock)
    return today


def page(client, token, method="get"):
    return getattr(client, method)(f"/communication/unsubscribe/{token}/")


def decodings(token: str) -> list[bytes]:
    """Every way one might try to read the token."""
    padded = token + "=" * (-len(token) % 4)
    found = [token.encode(), base64.urlsafe_b64decode(padded)]
    for start in range(1, 4):  # misaligned reads
        chunk = token[start:]
        chunk = chunk[: len(chunk) // 4 * 4]
        found.append(base64.urlsafe_b64decode(chunk))
    return found


def test_the_address_cannot_be_read_from_the_url(day):
    url = unsubscribe_url("email", ADDRESS, "announcement")
    token = url.rsplit("/", 2)[-2]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    for text in [url[len(SITE) :].encode(), *decodings(token)]:
        for part in (b"john", b"smith", b"example", b"announcement", b"email"):
            assert part not in text.lower()


def test_nor_from_the_pages_it_opens(client, db, day):
    token = make_token("email", ADDRESS, "announcement")
    for method in ("get", "post"):
        response = page(client, token, method)
        assert response.status_code == 200
        assert "j•••@e•••.com" in response.content.decode()
        assert b"john" not in response.content and b"smith" not in response.content
    assert OptOut.objects.get().address == ADDRESS


def test_a_token_names_what_to_unsubscribe_from(day):
    assert read_token(make_token("email", " John.Smith@Example.com ", "reminder")) == (
        "email",
        ADDRESS,
        "reminder",
    )
    assert read_token(make_token("sms", "+447911123456", "announcement")) == (
        "sms",
        "+447911123456",
        "announcement",
    )


def test_one_recipient_gets_one_link_a_day(day):
    first = make_token("email", ADDRESS, "announcement")
    assert make_token("email", ADDRESS.upper(), "announcement") == first
    assert make_token("email", "jane@example.com", "announcement") != first
    assert make_token("email", ADDRESS, "reminder") != first
    day[0] += 1
    assert make_token("email", ADDRESS, "announcement") != first


def test_token_length_tells_the_address_length_only_to_16_bytes(day):
    for n in range(1, 41):
        token = make_token("email", "a" * n + "@example.com", "reminder")
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert (len(sealed) - 1 - 16) % 16 == 0  # version, synthetic IV, padded plaintext


@pytest.mark.parametrize("position", [0, 1, 5, 20, 40, -2, -1])
def test_an_altered_token_is_refused(client, db, day, position):
    token = make_token("email", ADDRESS, "announcement")
    index = position % len(token)
    altered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    with pytest.raises(InvalidUnsubscribeToken):
        read_token(altered)
    assert page(client, altered, "post").status_code == 400
    assert not OptOut.objects.exists()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "A",
        "AQ",
        "not base64!",
        "AQ==",
        "Ag" + "A" * 60,  # another version
        base64.urlsafe_b64encode(b"\x01" + b"\x00" * 48).decode().rstrip("="),
    ],
)
def test_garbage_is_refused_with_a_typed_error(day, token):
    with pytest.raises(InvalidUnsubscribeToken) as raised:
        read_token(token)
    assert isinstance(raised.value, CommunicationError)
    assert isinstance(raised.value, ValueError)


def test_junk_characters_are_not_skipped(day):
    token = make_token("email", ADDRESS, "announcement")
    with pytest.raises(InvalidUnsubscribeToken):
        read_token(token[:10] + "." + token[10:])


def test_a_token_works_for_the_configured_number_of_days(client, db, day, settings):
    settings.COMMUNICATION = {"SITE_URL": SITE, "UNSUBSCRIBE_TOKEN_DAYS": 30}
    token = make_token("email", ADDRESS, "announcement")
    day[0] += 30
    assert read_token(token)[1] == ADDRESS
    day[0] += 1
    with pytest.raises(ExpiredUnsubscribeToken):
        read_token(token)
    response = page(client, token, "post")
    assert response.status_code == 410
    assert b"expired" in response.content
    assert not OptOut.objects.exists()


def test_the_default_lifetime_is_a_year(day):
    token = make_token("email", ADDRESS, "announcement")
    day[0] += 365
    assert read_token(token)
    day[0] += 1
    with pytest.raises(ExpiredUnsubscribeToken):
        read_token(token)


def test_tokens_can_be_made_to_last_for_ever(day, settings):
    settings.COMMUNICATION = {"SITE_URL": SITE, "UNSUBSCRIBE_TOKEN_DAYS": None}
    token = make_token("email", ADDRESS, "announcement")
    day[0] += 100 * 365
    assert read_token(token)[1] == ADDRESS


def test_rotating_secret_key_keeps_links_while_the_old_key_is_a_fallback(day, settings):
    token = make_token("email", ADDRESS, "announcement")
    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="a-new-key", SECRET_KEY_FALLBACKS=[old]):
        assert read_token(token)[1] == ADDRESS
        assert make_token("email", ADDRESS, "announcement") != token  # new links: new key
    with (
        override_settings(SECRET_KEY="a-new-key", SECRET_KEY_FALLBACKS=[]),
        pytest.raises(InvalidUnsubscribeToken),
    ):
        read_token(token)  # revoked with the old key


def legacy_token(value, salt=optout_tokens.LEGACY_SALT) -> str:
    return signing.Signer(salt=salt).sign_object(value)


def test_legacy_signed_links_still_work_while_allowed(client, db, settings):
    token = legacy_token(["email", ADDRESS, "announcement"])
    assert read_token(token) == ("email", ADDRESS, "announcement")
    response = page(client, token, "post")
    assert response.status_code == 200
    assert b"john" not in response.content
    assert OptOut.objects.get().address == ADDRESS

    settings.COMMUNICATION = {"SITE_URL": SITE, "UNSUBSCRIBE_LEGACY_TOKENS": False}
    with pytest.raises(InvalidUnsubscribeToken):
        read_token(token)
    assert page(client, token).status_code == 400


@pytest.mark.parametrize(
    "token",
    [
        legacy_token(["email", ADDRESS, "announcement"], salt="another"),
        legacy_token(["email", ADDRESS, "announcement"])[:-2] + "xx",
        legacy_token(["email", ADDRESS, "transactional"]),
        legacy_token(["email", ADDRESS]),
        legacy_token({"channel": "email"}),
        signing.dumps(["email", ADDRESS, "announcement"]),
    ],
)
def test_forged_or_useless_legacy_tokens_are_refused(token):
    with pytest.raises(InvalidUnsubscribeToken):
        read_token(token)


@pytest.mark.parametrize(
    ("channel", "address", "shown"),
    [
        ("email", "john.smith@example.com", "j•••@e•••.com"),
        ("email", "j@mail.example.co.uk", "j•••@m•••.uk"),
        ("email", "x@localhost", "x•••@•••"),
        ("sms", "+447911123456", "+••••••••••56"),
        ("sms", "+123", "••••"),
    ],
)
def test_pages_show_the_address_masked(channel, address, shown):
    assert masked(channel, address) == shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"UNSUBSCRIBE_TOKEN_DAYS": 30}, []),
        ({"UNSUBSCRIBE_TOKEN_DAYS": 0.5}, []),
        ({"UNSUBSCRIBE_TOKEN_DAYS": None}, []),
        ({"UNSUBSCRIBE_LEGACY_TOKENS": False}, []),
        ({"UNSUBSCRIBE_TOKEN_DAYS": 0}, ["communication.E014"]),
        ({"UNSUBSCRIBE_TOKEN_DAYS": -1}, ["communication.E014"]),
        ({"UNSUBSCRIBE_TOKEN_DAYS": "365"}, ["communication.E014"]),
        ({"UNSUBSCRIBE_TOKEN_DAYS": True}, ["communication.E014"]),
        ({"UNSUBSCRIBE_LEGACY_TOKENS": "no"}, ["communication.E014"]),
        ({"UNSUBSCRIBE_LEGACY_TOKENS": 0}, ["communication.E014"]),
    ],
)
def test_token_settings_are_checked(value, expected):
    with override_settings(COMMUNICATION=value):
        assert [message.id for message in check_settings()] == expected
