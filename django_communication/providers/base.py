"""The provider contract.

A provider is a class with a ``name``, the ``channels`` it serves and a ``send(message)`` method
that returns the provider's message id or raises ProviderError(retryable=...). Any other
exception is recorded as a retryable failure. One instance serves many messages, so clients are
built once (in ``__init__`` or lazily) and reused.

    class MyGateway(SmsProvider):
        name = "my-gateway"

        def send(self, message):
            response = my_client.post(to=message.to_address, text=message.body_text)
            return response["id"]

``send()`` may return a ``Receipt`` instead of the bare id, to say that another provider
accepted the message (the fallback chain does).

A provider that holds connections releases them in ``close()``, called when a settings change
replaces the instance. A provider may also define ``prepare(message)``: the side-effect-free
part of sending (building the request), which the relay runs while the previous outcome is
being written.

Concurrency: ``send_many()`` and the outbox relay run a batch in lanes (threads), each lane
entering ``session()`` once and then calling ``prepare(message)`` and ``send(message)`` for one
message at a time, in the lane's thread; several lanes call ``send()`` on the one instance at
once. What a session opens belongs to its lane (keep it in a ``threading.local``). A provider
whose ``send()`` cannot run in several threads at once sets ``thread_safe = False``: its
batches then go one message at a time, in the calling thread. ``close()`` is never called
while a batch runs on the instance in this process.

Email providers add ``message.extra_headers`` (a dict, e.g. ``List-Unsubscribe``) to the email,
and identify it by ``stable_message_id(message)``: the same on every attempt at the message, so
a receiving server can tell a resend from a new message (``identified_headers()`` gives both);
they attach ``message.attachments`` (references to stored files: providers/mime.py builds the
parts); a provider that cannot attach files should refuse a message that has them.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from email.utils import make_msgid
from typing import TYPE_CHECKING, ClassVar

from ..choices import Channel

if TYPE_CHECKING:
    from ..models import CommunicationSettings, Message


@dataclass(frozen=True)
class Receipt:
    """A provider's acceptance of a message: its id for the message, which provider accepted it,
    and what failed on the providers tried before (a fallback chain)."""

    message_id: str
    provider: str
    failures: tuple[str, ...] = ()


class BaseProvider:
    name: str = ""
    channels: ClassVar[frozenset[str]] = frozenset()
    #: Whether several lanes (threads) may call send() on this instance at once.
    thread_safe: ClassVar[bool] = True
    #: The largest email it accepts, attachments base64-encoded (None: only the library's
    #: ``ATTACHMENT_MAX_BYTES`` applies); checked before anything is written.
    max_message_bytes: ClassVar[int | None] = None

    def __init__(self, config: CommunicationSettings) -> None:
        self.config = config

    def send(self, message: Message) -> str | Receipt:
        raise NotImplementedError(f"{type(self).__name__} must implement send(message).")

    def prepare(self, message: Message) -> None:
        """Optional: work for ``message`` that has no side effect (building its request), done
        while the previous message's outcome is being written; send(message) follows in the
        same thread. What it raises is ignored: send() meets it again and reports it."""

    def session(self) -> AbstractContextManager[object]:
        """Held around each batch of sends (around each lane's share of it, in the lane's
        thread): open a connection once for many messages here."""
        return nullcontext()

    def close(self) -> None:
        """Release what the instance holds (connection pools): called once when a settings
        change replaces it. A send already in flight on it may still complete."""


class EmailProvider(BaseProvider):
    channels = frozenset({Channel.EMAIL})


def stable_message_id(message: Message) -> str:
    """An RFC 5322 Message-ID derived from the message's idempotency key (or, without one, its
    id) and its sender's domain: every attempt at the same message carries the same one."""
    key = message.idempotency_key or str(message.pk)
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    domain = message.from_address.rpartition("@")[2].strip("> ")
    if not domain:  # no sender domain: make_msgid's (the host's name)
        domain = make_msgid().rpartition("@")[2].rstrip(">")
    return f"<{digest}@{domain}>"


def identified_headers(message: Message, header: str = "Message-ID") -> dict[str, str]:
    """The message's extra headers (List-Unsubscribe...) plus its stable_message_id() under
    ``header``."""
    return {**message.extra_headers, header: stable_message_id(message)}


class SmsProvider(BaseProvider):
    channels = frozenset({Channel.SMS})


class VoiceProvider(BaseProvider):
    """Calls ``message.to_address`` and says ``message.body_text``; with ``message.choices``
    (digit -> label) it listens for one key and reports it as a keypad reply (replies.py)."""

    channels = frozenset({Channel.VOICE})
