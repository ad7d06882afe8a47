"""What a relay batch came to: per event (:class:`EventOutcome`) and counted
(:class:`DrainSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django_communication.exceptions import CommunicationError

from .conf import Rule
from .models import OutboxEvent


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
            self.errors.append(f"{rule.template_key} ({rule.channel or 'routed'}): {exc}")
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

    @property
    def processed(self) -> int:
        return self.dispatched + self.retried + self.dead + self.lost_lease

    def add(self, other: DrainSummary) -> None:
        self.dispatched += other.dispatched
        self.retried += other.retried
        self.dead += other.dead
        self.lost_lease += other.lost_lease

    def __str__(self) -> str:
        text = f"dispatched {self.dispatched}, retried {self.retried}, dead {self.dead}"
        return text + (f", lost lease {self.lost_lease}" if self.lost_lease else "")
