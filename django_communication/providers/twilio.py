"""SMS (the Messages API) and voice calls (the Calls API) through Twilio, with the official
``twilio`` package: ``pip install "django-communication[twilio]"``.

A call says ``message.body_text`` with TwiML sent inline; when the message has keypad choices,
the TwiML gathers one key and Twilio posts it to the keypad webhook (``replies.py``). Both kinds
report their status to the status webhook. The webhooks' absolute URLs start with
``COMMUNICATION["SITE_URL"]``: without it nothing is reported back, and a call with choices
cannot be placed.

Credentials: ``COMMUNICATION["TWILIO"]["ACCOUNT_SID"]`` / ``["AUTH_TOKEN"]``, else the settings
singleton's ``twilio_account_sid`` / ``twilio_auth_token``, else the environment variables
``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN`` (Twilio's own convention).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.urls import NoReverseMatch, reverse

from ..choices import Channel
from ..conf import comm_settings
from ..exceptions import ConfigurationError, ProviderError
from .base import BaseProvider

if TYPE_CHECKING:
    from ..models import CommunicationSettings, Message

EXTRA = 'pip install "django-communication[twilio]"'
#: Seconds to connect and to read each answer: fail fast during an outage, the outbox retries.
TIMEOUT = 10.0
#: HTTP statuses that mean "not now" or "fix the configuration and retry": credentials (401,
#: 403), a wrong account in the URL (404), throttling (429), timeouts, Twilio's own faults.
RETRYABLE_STATUSES = frozenset({401, 403, 404, 408, 429})
#: The call progress Twilio reports to the status webhook (besides the final one).
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def sdk() -> SimpleNamespace:
    """The parts of the twilio package used here; ConfigurationError naming the extra if it is
    not installed."""
    try:
        from twilio.base.exceptions import TwilioException
        from twilio.http.http_client import TwilioHttpClient
        from twilio.request_validator import RequestValidator
        from twilio.rest import Client
        from twilio.twiml.messaging_response import MessagingResponse
        from twilio.twiml.voice_response import VoiceResponse
    except ImportError as exc:
        raise ConfigurationError(
            f"The twilio provider needs the twilio package, which is not installed: {EXTRA}."
        ) from exc
    return SimpleNamespace(
        Client=Client,
        TwilioHttpClient=TwilioHttpClient,
        TwilioException=TwilioException,
        RequestValidator=RequestValidator,
        VoiceResponse=VoiceResponse,
        MessagingResponse=MessagingResponse,
    )


def credentials(config: CommunicationSettings) -> tuple[str, str]:
    """(account SID, auth token), each from the first place that has it (see the module doc);
    blank where none has it."""
    options = comm_settings.twilio
    sid = (
        options.get("ACCOUNT_SID")
        or config.twilio_account_sid
        or os.environ.get("TWILIO_ACCOUNT_SID", "")
    )
    token = (
        options.get("AUTH_TOKEN")
        or config.twilio_auth_token
        or os.environ.get("TWILIO_AUTH_TOKEN", "")
    )
    return sid, token


def webhook_url(name: str, *args: Any) -> str | None:
    """The absolute URL of one of the library's Twilio webhooks; None without SITE_URL."""
    site_url = comm_settings.site_url
    if not site_url:
        return None
    try:
        return site_url + reverse(f"django_communication:{name}", args=args)
    except NoReverseMatch as exc:
        raise ConfigurationError(
            "The Twilio webhooks are not in the URLconf: add "
            "path('communication/', include('django_communication.urls'))."
        ) from exc


class TwilioProvider(BaseProvider):
    name = "twilio"
    channels = frozenset({Channel.SMS, Channel.VOICE})
    #: One requests Session, and TwilioHttpClient keeps each request and response on itself:
    #: its batches go one message at a time.
    thread_safe = False

    def __init__(self, config: CommunicationSettings) -> None:
        super().__init__(config)
        self.sdk = sdk()
        sid, token = credentials(config)
        if not sid or not token:
            raise ConfigurationError(
                "The twilio provider has no credentials: set COMMUNICATION['TWILIO'] "
                "['ACCOUNT_SID'] and ['AUTH_TOKEN'], the Twilio fields of the communication "
                "settings, or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN in the environment."
            )
        self.http = self.sdk.TwilioHttpClient(timeout=TIMEOUT)
        self.client = self.sdk.Client(sid, token, http_client=self.http)
        api_url = comm_settings.twilio.get("API_URL")
        if api_url:
            self.client.api.base_url = api_url.rstrip("/")

    def close(self) -> None:
        if self.http.session is not None:
            self.http.session.close()

    def send(self, message: Message) -> str:
        try:
            if message.channel == Channel.VOICE:
                return self.call(message)
            return self.text(message)
        except self.sdk.TwilioException as exc:
            raise api_error(exc, self.name) from exc
        except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
            raise ProviderError(
                f"{type(exc).__name__}: {exc}", retryable=True, provider=self.name
            ) from exc

    def text(self, message: Message) -> str:
        request: dict[str, Any] = {"to": message.to_address, "body": message.body_text}
        if message.from_address:
            request["from_"] = message.from_address
        callback = webhook_url("twilio_status")
        if callback:
            request["status_callback"] = callback
        return self.client.messages.create(**request).sid

    def call(self, message: Message) -> str:
        request: dict[str, Any] = {
            "to": message.to_address,
            "from_": message.from_address,
            "twiml": str(self.twiml(message)),
        }
        callback = webhook_url("twilio_status")
        if callback:
            request["status_callback"] = callback
            request["status_callback_event"] = CALL_EVENTS
        return self.client.calls.create(**request).sid

    def twiml(self, message: Message) -> Any:
        """Say the text; with choices, inside a Gather of one key posted to the keypad webhook.
        The text is escaped as XML text: nothing in a rendered context can add TwiML verbs."""
        response = self.sdk.VoiceResponse()
        if not message.choices:
            response.say(message.body_text)
            return response
        action = webhook_url("twilio_keypad", message.pk)
        if action is None:
            raise ProviderError(
                "A call with keypad choices needs COMMUNICATION['SITE_URL'], the public base "
                "URL Twilio posts the key to.",
                retryable=True,
                provider=self.name,
            )
        gather = response.gather(num_digits=1, action=action, method="POST")
        gather.say(message.body_text)
        return response


def api_error(exc: Exception, provider: str) -> ProviderError:
    """The ProviderError for what the twilio client raised: permanent for a refused request (a
    400 such as 21211, an invalid number), retryable for the statuses above, 5xx, and failures
    without an HTTP answer."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        return ProviderError(f"{type(exc).__name__}: {exc}", retryable=True, provider=provider)
    code = getattr(exc, "code", None)
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    description = f"Twilio error {code} (HTTP {status}): {text}"
    return ProviderError(description, retryable=retryable, provider=provider)
