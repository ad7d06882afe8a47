"""Delivering saved messages: each to its provider, each outcome recorded as soon as it is known.

Each outcome is durable before the next provider call, so a crash leaves at most the message in
flight unrecorded; where the write is pipelined (recorder.py), the provider prepares the next
message while it travels. With a rate limit for the provider (RATE_LIMITS), each message first
waits for its send slot (ratelimit.py).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.utils import timezone

from .choices import MessageStatus
from .exceptions import ProviderError
from .models import Message
from .providers.base import BaseProvider, Receipt
from .ratelimit import pacer
from .recorder import Recorder
from .signals import fire, message_sent


def deliver(messages: list[Message], provider: BaseProvider) -> list[Message | ProviderError]:
    """Hand saved messages to ``provider`` in one session; return, in order, each sent Message
    or the ProviderError (carrying its failed Message) that stopped it."""
    outcomes: list[Message | ProviderError] = []
    pace = pacer(provider.name)
    with provider.session(), Recorder(pipeline=len(messages) > 1) as recorder:
        for message in messages:
            if pace is not None:
                recorder.settle()  # the slot is taken on the same connection
                pace()
            with suppress(Exception):  # what prepare() raises, send() meets and reports
                provider.prepare(message)
            recorder.settle()
            outcomes.append(deliver_one(message, provider, recorder))
    return outcomes


def deliver_one(
    message: Message, provider: BaseProvider, recorder: Recorder
) -> Message | ProviderError:
    try:
        answer = provider.send(message)
    except Exception as exc:
        error = ProviderError.of(exc, provider.name, message)
        text = "; ".join(error.failures) if error.failures else error.description
        record(message, recorder, provider=error.provider, status=MessageStatus.FAILED, error=text)
        return error
    receipt = answer if isinstance(answer, Receipt) else Receipt(str(answer or ""), provider.name)
    record(
        message,
        recorder,
        provider=receipt.provider,
        status=MessageStatus.SENT,
        provider_message_id=receipt.message_id,
        sent_at=timezone.now(),
        error=f"{'; '.join(receipt.failures)}; sent by {receipt.provider}"
        if receipt.failures
        else "",
    )
    if message_sent.receivers:
        recorder.settle()  # receivers may query the connection
    fire(message_sent, message=message)
    return message


def record(message: Message, recorder: Recorder, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    for name, value in fields.items():
        setattr(message, name, value)
    recorder.write(message, fields)
