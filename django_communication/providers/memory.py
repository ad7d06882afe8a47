"""Keeps sent messages in memory, for your own tests.

from django_communication.providers import memory

memory.clear()
send(to=user, template_key="welcome")
assert memory.messages[0].to_address == user.email
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

from ..choices import Channel
from .base import BaseProvider

if TYPE_CHECKING:
    from ..models import Message

messages: list[Message] = []
_lock = threading.Lock()


def clear() -> None:
    with _lock:
        messages.clear()


class MemoryProvider(BaseProvider):
    name = "memory"
    channels = frozenset({Channel.EMAIL, Channel.SMS, Channel.VOICE})

    def send(self, message: Message) -> str:
        with _lock:
            messages.append(message)
        return f"memory-{uuid.uuid4()}"
