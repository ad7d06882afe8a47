"""Twilio's webhooks (``webhooks/twilio.py`` verifies each request):

- ``twilio/status/``: message and call status callbacks → the status history (tracking.py);
- ``twilio/sms/``: an SMS to our number → a received Message, STOP/START applied (inbound.py);
- ``twilio/keypad/<message id>/``: the key pressed during a call → a keypad reply (replies.py).

A request that is not genuine, is malformed, or was recorded before (a replay) gets a 4xx and
changes nothing; the answer is the status phrase, the reason goes to the log.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from . import inbound, tracking
from .choices import Channel, Direction
from .models import Message
from .providers.twilio import sdk, webhook_url
from .rendering import KEYPAD
from .replies import record_reply
from .tracking import MalformedEvent
from .views import read_body, refused
from .webhooks.errors import RejectedNotification
from .webhooks.twilio import verified_params
from .webhooks.twilio_events import status_event

TWIML = "text/xml"


def twilio_view(handle):
    """POST only; read and verify the request, then ``handle(request, params, **kwargs)``."""

    @csrf_exempt
    @never_cache
    def view(request: HttpRequest, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            params = verified_params(request, read_body(request))
            return handle(request, params, **kwargs)
        except RejectedNotification as exc:
            return refused(exc.status, exc.reason, "Twilio")
        except MalformedEvent as exc:
            return refused(400, f"malformed: {exc}", "Twilio")

    view.__name__ = view.__qualname__ = handle.__name__
    view.__doc__ = handle.__doc__
    return view


def replayed(what: str) -> RejectedNotification:
    return RejectedNotification(f"{what} was recorded before: a replay, or a retry.", 409)


@twilio_view
def status(request: HttpRequest, params: QueryDict) -> HttpResponse:
    """A message or call status callback."""
    event = tracking.apply(status_event(params))
    if event.matched and not event.recorded:
        raise replayed(f"Status {event.detail!r} of {event.provider_message_id}")
    return HttpResponse("recorded" if event.matched else "ignored", content_type="text/plain")


@twilio_view
def inbound_sms(request: HttpRequest, params: QueryDict) -> HttpResponse:
    """An SMS to one of our numbers; answered with empty TwiML (no automatic reply)."""
    sid, sender = params.get("MessageSid"), params.get("From")
    if not sid or not sender:
        raise MalformedEvent("Inbound SMS without MessageSid or From.")
    saved = inbound.received_sms(
        "twilio",
        sid,
        sender,
        params.get("To", ""),
        params.get("Body", ""),
        dict(params.items()),
        f"twilio:{sid}"[:100],
        timezone.now(),
    )
    if saved is None:
        raise replayed(f"Inbound SMS {sid}")
    return HttpResponse(str(sdk().MessagingResponse()), content_type=TWIML)


@twilio_view
def keypad(request: HttpRequest, params: QueryDict, message_id: uuid.UUID) -> HttpResponse:
    """The key pressed during call ``message_id``: a known choice is recorded and the call
    ends; another key hears the message again."""
    call = Message.objects.filter(
        pk=message_id, channel=Channel.VOICE, direction=Direction.OUTBOUND
    ).first()
    call_id, digit = params.get("CallSid", ""), params.get("Digits", "")
    if call is None:
        raise RejectedNotification(f"No outbound call {message_id}.", 404)
    if not call_id or (call.provider_message_id and call_id != call.provider_message_id):
        raise RejectedNotification(f"CallSid {call_id!r} is not the call of {message_id}.")
    if digit not in KEYPAD:
        raise MalformedEvent(f"Digits {digit[:20]!r} is not one key.")
    response = sdk().VoiceResponse()
    if digit not in call.choices:
        again = webhook_url("twilio_keypad", call.pk)
        gather = response.gather(num_digits=1, action=again, method="POST")
        gather.say(call.body_text)
        return HttpResponse(str(response), content_type=TWIML)
    if record_reply(call, digit, call_id, dict(params.items())) is None:
        raise replayed(f"The keypad reply to {call_id}")
    response.hangup()
    return HttpResponse(str(response), content_type=TWIML)
