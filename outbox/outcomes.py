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

    @property
    def processed(self) -> int:
        return self.dispatched + self.retried + self.dead + self.lost_lease

    def add(self, other: DrainSummary) -> None:
        self.dispatched += other.dispatched
        self.retried += other.retried
        self.dead += other.dead
        self.lost_lease += other.lost_lease
        self.sent += other.sent

    def __str__(self) -> str:
        text = f"events dispatched {self.dispatched}, retried {self.retried}, dead {self.dead}"
        text += f", lost lease {self.lost_lease}" if self.lost_lease else ""
        return f"{text}; messages sent {self.sent}"
