"""Finding and sending messages a crash left ``pending``.

A send deferred to the commit (deferral.py) by ``on_commit`` is lost with the process if it
dies between the commit and the provider call: its row stays ``pending``, with an idempotency
key. send_pending() sends such rows, by key (send_many()'s idempotency path: one that went out
meanwhile is left alone). Rows without a key are not touched: only an immediate send leaves
one, and its provider may have accepted the message before the crash.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import router, transaction
from django.utils import timezone

from .choices import Direction, MessageStatus
from .exceptions import CommunicationError
from .models import Message
from .sending import SendRequest, send_many

#: A pending row younger than this may still be on its way (a commit's send, a relay's batch).
DEFAULT_AGE = timedelta(minutes=10)
BATCH = 500


def stale_pending(older_than: timedelta = DEFAULT_AGE):
    """Outbound ``pending`` messages with an idempotency key, untouched for ``older_than``."""
    return Message.objects.filter(
        direction=Direction.OUTBOUND,
        status=MessageStatus.PENDING,
        idempotency_key__isnull=False,
        updated_at__lt=timezone.now() - older_than,
    )


def send_pending(
    older_than: timedelta = DEFAULT_AGE, limit: int | None = None
) -> list[Message | CommunicationError]:
    """Send the stale pending messages (stale_pending()), at most ``limit``, oldest first, in
    batches; return each one's outcome as send_many() does. Each batch is claimed first (its
    ``updated_at`` moved to now, in a short transaction that skips rows another process holds),
    so two runs do not send the same row. Call it outside any transaction."""
    results: list[Message | CommunicationError] = []
    while limit is None or len(results) < limit:
        size = BATCH if limit is None else min(BATCH, limit - len(results))
        keys = claim(older_than, size)
        if not keys:
            break
        results += send_many([SendRequest(idempotency_key=key) for key in keys], "now")
    return results


def claim(older_than: timedelta, size: int) -> list[str]:
    using = router.db_for_write(Message)
    with transaction.atomic(using=using):
        rows = list(
            stale_pending(older_than)
            .using(using)
            .select_for_update(skip_locked=True)
            .order_by("updated_at")
            .values_list("pk", "idempotency_key")[:size]
        )
        Message.objects.using(using).filter(pk__in=[pk for pk, _ in rows]).update(
            updated_at=timezone.now()
        )
    return [key for _, key in rows]
