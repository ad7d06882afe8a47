"""Delivering saved messages: each to its provider, each outcome recorded as soon as it is known.

``deliver`` goes one at a time (sending.py picks it for ``concurrency`` 1, one message, or a
provider that is not ``thread_safe``): each outcome is durable before the next provider call,
so a crash leaves at most the message in flight unrecorded; where the write is pipelined
(recorder.py), the provider prepares the next message while it travels. Otherwise lanes.py,
built on the helpers here: up to ``concurrency`` provider calls in flight, and at most twice
that many messages handed to a provider without their outcome recorded. With a rate limit for
the provider (RATE_LIMITS), each message first waits for its send slot (ratelimit.py).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.utils import timezone

from .choices import MessageStatus
from .exceptions import ProviderError
from .models import Message
from .providers.base import BaseProvider, Receipt
from .ratelimit import slots_for
from .recorder import Recorder
from .signals import fire, message_sent

#: An outcome before it is recorded: the fields to write and what send_many() returns.
Answer = tuple[dict[str, Any], Message | ProviderError]


def deliver(messages: list[Message], provider: BaseProvider) -> list[Message | ProviderError]:
    """Hand saved messages to ``provider`` one at a time; return, in order, each sent Message or
    the ProviderError (carrying its failed Message) that stopped it."""
    outcomes: list[Message | ProviderError] = []
    slots = slots_for(provider.name)
    with provider.session(), Recorder(pipeline=len(messages) > 1) as recorder:
        for position, message in enumerate(messages):
            if slots is not None:
                recorder.settle()  # the slot is taken on the same connection
                slots.wait(len(messages) - position)
            prepare(message, provider)
            recorder.settle()
            fields, outcome = attempt(message, provider)
            record(message, recorder, fields)
            if isinstance(outcome, Message):
                notify(outcome, recorder)
            outcomes.append(outcome)
    return outcomes


def prepare(message: Message, provider: BaseProvider) -> None:
    with suppress(Exception):  # what prepare() raises, send() meets and reports
        provider.prepare(message)


def attempt(message: Message, provider: BaseProvider) -> Answer:
    """One provider call (no database): the outcome's fields and result."""
    try:
        answer = provider.send(message)
    except Exception as exc:
        return failure(ProviderError.of(exc, provider.name, message))
    receipt = answer if isinstance(answer, Receipt) else Receipt(str(answer or ""), provider.name)
    fields = {
        "provider": receipt.provider,
        "status": MessageStatus.SENT,
        "provider_message_id": receipt.message_id,
        "sent_at": timezone.now(),
        "error": f"{'; '.join(receipt.failures)}; sent by {receipt.provider}"
        if receipt.failures
        else "",
    }
    return fields, message


def failure(error: ProviderError) -> Answer:
    text = "; ".join(error.failures) if error.failures else error.description
    return {"provider": error.provider, "status": MessageStatus.FAILED, "error": text}, error


def record(message: Message, recorder: Recorder, fields: dict[str, Any]) -> None:
    recorder.write(message, stamp(message, fields))


def stamp(message: Message, fields: dict[str, Any]) -> dict[str, Any]:
    """Set the outcome's fields (and ``updated_at``) on the message; return them."""
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(message, name, value)
    return fields


def notify(message: Message, recorder: Recorder) -> None:
    if message_sent.receivers:
        recorder.settle()  # receivers may query the connection
    fire(message_sent, message=message)
