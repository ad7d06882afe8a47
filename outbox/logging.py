"""Log records a pipeline can parse, and a formatter that writes them as one JSON object a line.

The relay logs every change of an event's state on the ``outbox`` logger, one record per event,
with a message that starts with ``outbox.event`` and these attributes (``extra``):

========================  ==================================================================
``outcome``               ``claimed`` (DEBUG), ``dispatched`` (INFO), ``retried``, ``dead``,
                          ``lost_lease`` (WARNING)
``event_id``              the event's id (a UUID, as text)
``event_type``            e.g. ``booking.confirmed``
``attempt``               the attempt this outcome belongs to (1 for the first claim)
``provider``              the providers of the event's messages, comma-separated ("" if none)
``claim_token``           the relay batch's token: ties a claim to its outcome
``error``                 why it was retried or is dead ("" otherwise)
``retry_at``              when a retried event is due again (ISO 8601; "" otherwise)
``sent``                  of the messages this attempt handled, how many were sent, e.g.
                          ``1/2`` for a partial fan-out ("" if none was planned)
========================  ==================================================================

Plug the formatter in with ``LOGGING``::

    "formatters": {"json": {"()": "outbox.logging.JsonFormatter"}},
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # LOGGING may name the formatter before the apps are loaded.
    from .models import OutboxEvent

logger = logging.getLogger("outbox")

#: The message of every event record; a log pipeline can filter on it.
EVENT_MESSAGE = "outbox.event %(outcome)s: %(event_type)s %(event_id)s, attempt %(attempt)s"
EVENT_ERROR_MESSAGE = EVENT_MESSAGE + ": %(error)s"


def log_event(
    level: int,
    outcome: str,
    token_text: str,
    event: OutboxEvent,
    providers: list[str] | None = None,
    error: str = "",
    retry_at: str = "",
    sent: str = "",
) -> None:
    """One ``outbox.event`` record: the same fields in the message's arguments and as
    attributes of the record, for a JSON formatter."""
    if not logger.isEnabledFor(level):
        return
    fields = {
        "outcome": outcome,
        "event_id": str(event.pk),
        "event_type": event.event_type,
        "attempt": event.attempts,
        "provider": ",".join(providers or ()),
        "claim_token": token_text,
        "error": error,
        "retry_at": retry_at,
        "sent": sent,
    }
    logger.log(level, EVENT_ERROR_MESSAGE if error else EVENT_MESSAGE, fields, extra=fields)


#: Attributes every LogRecord has; anything else on a record came from ``extra``.
STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, every ``extra`` attribute of the record, and ``exception`` / ``stack`` when the
    record carries them. Values JSON cannot hold are written as ``str(value)``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in STANDARD_ATTRIBUTES and name not in data:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)
