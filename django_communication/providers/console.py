"""Prints each message to stdout: the default, for development."""

from __future__ import annotations

import sys
import uuid
from typing import TYPE_CHECKING, TextIO

from ..choices import Channel
from .base import BaseProvider

if TYPE_CHECKING:
    from ..models import Message


class ConsoleProvider(BaseProvider):
    name = "console"
    channels = frozenset({Channel.EMAIL, Channel.SMS, Channel.VOICE})
    stream: TextIO | None = None

    def send(self, message: Message) -> str:
        message_id = f"console-{uuid.uuid4()}"
        rule = "-" * 72
        lines = [rule, f"{message.channel.upper()} {message_id}"]
        lines.append(f"From: {message.from_address}")
        lines.append(f"To: {message.to_address}")
        if message.channel == Channel.EMAIL:
            lines.append(f"Subject: {message.subject}")
            lines += [f"{name}: {value}" for name, value in message.extra_headers.items()]
            lines += ["", message.body_text]
            if message.body_html:
                lines += ["", "[HTML]", message.body_html]
            lines += [
                f"[Attachment] {item['name']} ({item['mimetype']}, {item['size']} bytes)"
                for item in message.attachments
            ]
        else:
            lines += ["", message.body_text]
        if message.choices:
            lines += ["", "Keypad choices:"]
            lines += [f"  {digit}: {label}" for digit, label in sorted(message.choices.items())]
        lines.append(rule)
        stream = self.stream or sys.stdout
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        return message_id
