"""Operator actions on events, as single guarded UPDATEs: the admin and commands both call these.

Each function takes any queryset of events, changes only the rows whose status allows it and
returns how many it changed; the caller works out how many it skipped.
"""

from __future__ import annotations

from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from .models import OutboxEvent, OutboxStatus

#: Events an operator may send again, or give up on. Dispatched and cancelled events are final.
OPEN_STATUSES = (OutboxStatus.PENDING, OutboxStatus.DEAD)


def retry_now(queryset: QuerySet[OutboxEvent]) -> int:
    """Make pending and dead events due now; return how many changed.

    Dead events become pending with their attempts reset to 0, so the relay gives them the full
    ``MAX_ATTEMPTS`` again; ``last_error`` is kept for reference. Events a relay holds under a
    lease that has not run out are skipped (see :func:`open_events`); an expired claim token is
    cleared.
    """
    now = timezone.now()
    return open_events(queryset, now).update(
        # Every expression reads the row as it was: attempts is reset for the dead only.
        attempts=Case(
            When(status=OutboxStatus.DEAD, then=Value(0)),
            default=F("attempts"),
            output_field=OutboxEvent._meta.get_field("attempts"),
        ),
        status=OutboxStatus.PENDING,
        available_at=now,
        claim_token=None,
        updated_at=now,
    )


def discard(queryset: QuerySet[OutboxEvent], by: str) -> int:
    """Cancel pending and dead events, recording who did it in ``last_error``; return the count.

    Events a relay is working on are skipped, as in :func:`retry_now`: their messages may be on
    their way already.
    """
    now = timezone.now()
    return open_events(queryset, now).update(
        status=OutboxStatus.CANCELLED,
        last_error=f"Discarded by {by}" if by else "Discarded",
        claim_token=None,
        updated_at=now,
    )


def open_events(queryset: QuerySet[OutboxEvent], now) -> QuerySet[OutboxEvent]:
    """The pending and dead events of ``queryset`` that no relay is working on at ``now``.

    A relay's claim keeps the event pending with ``claim_token`` set and ``available_at`` at the
    end of its lease. While the lease runs the relay may be sending: a message whose row is still
    pending would go out a second time if another relay picked the event up, so such events are
    left alone. Once the lease has run out (the relay died) the event is fair game.
    """
    return (
        _plain(queryset)
        .filter(status__in=OPEN_STATUSES)
        .exclude(claim_token__isnull=False, available_at__gt=now)
    )


def _plain(queryset: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent]:
    """The same rows without ordering or slicing, which an UPDATE cannot take."""
    if queryset.query.is_sliced:
        return queryset.model._default_manager.using(queryset.db).filter(
            pk__in=list(queryset.values_list("pk", flat=True))
        )
    return queryset.order_by()
