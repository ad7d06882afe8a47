"""What a relay batch came to: per event (:class:`EventOutcome`) and counted
(:class:`DrainSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django_communication.exceptions import CommunicationError, ConfigurationError

from .conf import Rule
from .models import OutboxEvent

#: Marks, in ``last_error``, a failure only an administrator can fix (outbox.health counts them).
CONFIGURATION_PROBLEM = "configuration problem: "


@dataclass
class EventOutcome:
    """Why one claimed event cannot be dispatched (no errors: it can), and whether to retry."""

    event: OutboxEvent
    errors: list[str] = field(default_factory=list)
    retryable: bool = False
    #: The providers of the event's messages (for the log).
    providers: list[str] = field(default_factory=list)
    #: Of the messages this attempt handed to send_many(), how many were sent (or had been).
    sent: int = 0
    messages: int = 0

    @property
    def partly_sent(self) -> bool:
        return 0 < self.sent < self.messages

    @property
    def fan_out(self) -> str:
        """``sent/messages``, e.g. ``1/2`` (for the log); "" when no message was planned."""
        return f"{self.sent}/{self.messages}" if self.messages else ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, rule: Rule, exc: Exception) -> None:
        if isinstance(exc, CommunicationError):
            problem = CONFIGURATION_PROBLEM if isinstance(exc, ConfigurationError) else ""
            self.errors.append(f"{rule.template_key} ({rule.channel or 'routed'}): {problem}{exc}")
            self.retryable = self.retryable or not exc.permanent
        else:
            self.errors.append(f"{rule.template_key}: unexpected {exc!r}")
            self.retryable = True


@dataclass
class DrainSummary:
    dispatched: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0
    #: Messages a provider accepted during this drain (a retried event's earlier ones not again).
    sent: int = 0
    #: Retried or dead events of which some messages were sent (a partial fan-out).
    partly_sent: int = 0
    #: Claimed events given back unstarted because the relay was stopping (not processed).
    released: int = 0

    @property
    def processed(self) -> int:
        return self.dispatched + self.retried + self.dead + self.lost_lease

    def add(self, other: DrainSummary) -> None:
        self.dispatched += other.dispatched
        self.retried += other.retried
        self.dead += other.dead
        self.lost_lease += other.lost_lease
        self.sent += other.sent
        self.partly_sent += other.partly_sent
        self.released += other.released

    def __str__(self) -> str:
        text = f"events dispatched {self.dispatched}, retried {self.retried}, dead {self.dead}"
        if self.partly_sent:
            text += f" ({self.partly_sent} of them partly sent)"
        if self.lost_lease:
            text += f", lost lease {self.lost_lease}"
        if self.released:
            text += f", released {self.released}"
        return f"{text}; messages sent {self.sent}"
