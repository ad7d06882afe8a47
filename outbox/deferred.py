"""send() inside a transaction, made durable: the outbox is django_communication's deferrer.

A send deferred to the commit (django_communication.deferral) becomes one OutboxEvent of type
``DEFERRED_SEND``, written in the same transaction, naming the pending messages by idempotency
key; the relay sends them with ``send_many()`` like any rule's messages, so a process that dies
right after the commit loses nothing. Registered by OutboxConfig.ready().
"""

from __future__ import annotations

from django_communication import SendRequest
from django_communication.models import Message

from .conf import DEFERRED_SEND, Rule

#: Stands for the send() call in the event's outcome (errors read "send() (routed): ...").
DEFERRED_RULE = Rule(template_key="send()")


def defer_to_outbox(messages: list[Message], using: str) -> None:
    from .producer import emit

    emit(
        DEFERRED_SEND,
        context={"messages": [message.idempotency_key for message in messages]},
        using=using,
    )


def deferred_requests(context: dict) -> list[tuple[Rule, SendRequest]]:
    """The sends a DEFERRED_SEND event stands for: each pending message, by its key."""
    return [
        (DEFERRED_RULE, SendRequest(idempotency_key=key)) for key in context.get("messages") or []
    ]
