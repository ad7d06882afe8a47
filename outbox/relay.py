"""The relay: claim due events, send each rule's message, record the outcome.

claim (one short transaction, committed before any I/O) → load recipients and related objects
(one query per content type) → send() per rule with a deterministic idempotency key →
finalize with an UPDATE guarded by the claim token, so a relay whose lease ran out changes
nothing.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from django_communication.conf import comm_settings
from django_communication.exceptions import CommunicationError
from django_communication.models import Message
from django_communication.ratelimit import GUARD
from django_communication.sending import SendRequest, send_many

from .conf import Rule, outbox_settings
from .logging import EVENT_ERROR_MESSAGE, EVENT_MESSAGE
from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger("outbox")


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


@dataclass
class Outcome:
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


def drain(
    batch_size: int | None = None,
    limit: int | None = None,
    progress: Callable[[DrainSummary], None] | None = None,
) -> DrainSummary:
    """Dispatch due events batch by batch until none is due (or ``limit`` were processed)."""
    summary = DrainSummary()
    batch_size = lease_safe_batch_size(batch_size or outbox_settings.batch_size)
    with relaxed_commits():
        while limit is None or summary.processed < limit:
            size = batch_size if limit is None else min(batch_size, limit - summary.processed)
            token, events = claim(size)
            if not events:
                break
            if logger.isEnabledFor(logging.DEBUG):
                for event in events:
                    log_event(logging.DEBUG, "claimed", str(token), event)
            summary.add(process_batch(token, events))
            if progress:
                progress(summary)
    return summary


def lease_safe_batch_size(requested: int) -> int:
    """``requested``, or fewer events when the slowest send-rate limit (RATE_LIMITS) could not
    send a whole batch within half of LEASE_SECONDS: a lease must outlast its batch."""
    limits = comm_settings.rate_limits
    if not limits:
        return requested
    slowest = min(float(rate) for rate in limits.values())
    fits = int(outbox_settings.lease_seconds / 2 * slowest / (1 + GUARD))
    return max(1, min(requested, fits))


@contextmanager
def relaxed_commits() -> Iterator[None]:
    """With OUTBOX["ASYNC_COMMIT"], the relay's own commits do not wait for the disk:
    PostgreSQL's ``synchronous_commit = off``, SQLite's ``synchronous = NORMAL`` (WAL mode
    only). A relay that dies loses nothing it committed; only a crash of the database server
    (or of the machine, for SQLite) can forget the last moments of outcomes, whose messages
    are then sent again. The connection's own setting is restored afterwards."""
    restores: list[tuple[BaseDatabaseWrapper, str]] = []
    if outbox_settings.async_commit:
        for alias in {router.db_for_write(OutboxEvent), router.db_for_write(Message)}:
            connection = connections[alias]
            relax = RELAXERS.get(connection.vendor)
            if relax is None or connection.in_atomic_block:
                continue
            with connection.cursor() as cursor:
                restore = relax(cursor)
            if restore:
                restores.append((connection, restore))
    try:
        yield
    finally:
        for connection, restore in restores:
            with suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute(restore)


def relax_postgresql(cursor) -> str:
    cursor.execute("SET synchronous_commit TO OFF")
    return "RESET synchronous_commit"


def relax_sqlite(cursor) -> str | None:
    cursor.execute("PRAGMA journal_mode")
    journal_mode = str(cursor.fetchone()[0]).lower()
    cursor.execute("PRAGMA synchronous")
    level = int(cursor.fetchone()[0])
    if journal_mode != "wal" or level <= SQLITE_NORMAL:
        return None
    cursor.execute(f"PRAGMA synchronous = {SQLITE_NORMAL}")
    return f"PRAGMA synchronous = {level}"


SQLITE_NORMAL = 1
RELAXERS = {"postgresql": relax_postgresql, "sqlite": relax_sqlite}


def claim(batch_size: int) -> tuple[uuid.UUID, list[OutboxEvent]]:
    """Lease up to ``batch_size`` due events to this relay; commit before returning."""
    using = router.db_for_write(OutboxEvent)
    token = uuid.uuid4()
    now = timezone.now()
    lease_until = now + timedelta(seconds=outbox_settings.lease_seconds)
    due = OutboxEvent.objects.using(using).filter(
        status=OutboxStatus.PENDING, available_at__lte=now
    )
    features = transaction.get_connection(using).features
    claim_fields = {
        "claim_token": token,
        "available_at": lease_until,
        "attempts": F("attempts") + 1,
    }
    candidates = due.filter(next_in_order()).order_by("available_at")
    if features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True)
    if features.can_return_columns_from_insert and features.allow_sliced_subqueries_with_in:
        # PostgreSQL, SQLite 3.35+: one UPDATE picks the rows and returns them. PostgreSQL's
        # subquery locks them, skipping rows another relay holds, and rechecks that they are
        # still due. SQLite has no row locks, but one statement reads and writes under one
        # lock: it waits for the write lock and sees current rows, or fails (a transaction
        # that read first could not wait). The outer WHERE is the primary key only, so that
        # no planner walks the due rows a second time.
        picked = OutboxEvent.objects.using(using).filter(
            pk__in=candidates.values("pk")[:batch_size]
        )
        with transaction.atomic(using=using):
            events = update_returning(picked, claim_fields)
        return token, sorted(events, key=lambda event: (event.created_at, str(event.pk)))
    with transaction.atomic(using=using):
        ids = list(candidates.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return token, []
        # "Still due" again: without row locks, a relay that claimed them meanwhile wins.
        due.filter(pk__in=ids).update(**claim_fields)
    events = OutboxEvent.objects.using(using).filter(pk__in=ids, claim_token=token)
    return token, list(events.order_by("created_at"))


def update_returning(queryset: QuerySet, values: dict[str, object]) -> list[OutboxEvent]:
    """queryset.update(**values), returning the updated rows as model instances."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    if not sql:
        return []
    connection = connections[queryset.db]
    meta = OutboxEvent._meta
    columns = ", ".join(connection.ops.quote_name(f.column) for f in meta.concrete_fields)
    return list(OutboxEvent.objects.using(queryset.db).raw(f"{sql} RETURNING {columns}", params))


def next_in_order() -> Q:
    """Events without an ordering key, and keyed events no earlier event of whose key is still
    pending (due, leased to a relay, backing off or delayed): at most one per key per claim, and
    none while a relay holds the one before it. The claim still walks ``outbox_due_idx``; only
    keyed rows probe ``outbox_ordering_idx``."""
    earlier = OutboxEvent.objects.filter(
        Q(ordering_seq__lt=OuterRef("ordering_seq"))
        | Q(ordering_seq=OuterRef("ordering_seq"), pk__lt=OuterRef("pk")),
        ordering_key=OuterRef("ordering_key"),
        ordering_key__isnull=False,
        status=OutboxStatus.PENDING,
    )
    return Q(ordering_key__isnull=True) | ~Exists(earlier)


def process_batch(token: uuid.UUID, events: list[OutboxEvent]) -> DrainSummary:
    recipients = load_references(events, "to")
    related = load_references(events, "related")
    outcomes = [Outcome(event) for event in events]
    planned = [
        (outcome, rule, request)
        for outcome in outcomes
        for rule, request in plan(outcome, recipients, related)
    ]
    results = send_isolated([request for _, _, request in planned])
    for (outcome, rule, _), result in zip(planned, results, strict=True):
        provider = getattr(result, "provider", "")  # a Message or a ProviderError has one
        if provider and provider not in outcome.providers:
            outcome.providers.append(provider)
        if isinstance(result, Exception):
            outcome.fail(rule, result)
    return finalize(token, outcomes)


def send_isolated(requests: list[SendRequest]) -> list[object]:
    """send_many() for the batch; if something other than a CommunicationError escapes it (a
    bug in a resolver...), each request again on its own, so only its event pays."""
    try:
        return send_many(requests)
    except Exception:
        logger.exception("outbox: a batch send raised; retrying its messages one by one")
    results: list[object] = []
    for request in requests:
        try:
            results += send_many([request])
        except Exception as exc:
            results.append(exc)
    return results


def load_references(events: Iterable[OutboxEvent], prefix: str) -> dict[tuple[int, str], object]:
    """Objects the events point at, one query per content type, keyed by (type id, pk string)."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for event in events:
        type_id = getattr(event, f"{prefix}_content_type_id")
        if type_id:
            wanted[type_id].add(getattr(event, f"{prefix}_object_id"))
    found: dict[tuple[int, str], object] = {}
    for type_id, ids in wanted.items():
        model = ContentType.objects.get_for_id(type_id).model_class()
        if model is None:
            continue
        try:
            objects = list(model._base_manager.filter(pk__in=list(ids)))
        except (ValueError, ValidationError):
            # An id that no longer fits the model's key: load the rest one by one, so only
            # its event fails ("no longer exists").
            objects = [obj for pk in ids for obj in load_one(model, pk)]
        for obj in objects:
            found[(type_id, str(obj.pk))] = obj
    return found


def load_one(model, pk: str) -> list:
    try:
        return list(model._base_manager.filter(pk=pk))
    except (ValueError, ValidationError):
        return []


def plan(outcome: Outcome, recipients: dict, related: dict) -> list[tuple[Rule, SendRequest]]:
    """The messages an event asks for, one per rule; records why there are none."""
    event = outcome.event
    if event.attempts > outbox_settings.max_attempts:
        # Claimed again and again without a finished batch: processing it kills the relay.
        outcome.errors.append(f"Claimed {event.attempts} times without finishing.")
        return []
    rules = outbox_settings.rules_for(event.event_type)
    if not rules:
        outcome.errors.append(f"No rule for event type {event.event_type!r} in OUTBOX['RULES'].")
        return []
    to = resolve(event, "to", recipients, outcome)
    related_object = resolve(event, "related", related, outcome)
    if not outcome.ok:
        return []
    return [
        (
            rule,
            SendRequest(
                to=to,
                template_key=rule.template_key,
                context=event.context,
                channel=rule.channel or event.channel or None,
                message_type=rule.message_type,
                related_object=related_object,
                idempotency_key=f"{event.message_key_prefix}{rule.key}",
            ),
        )
        for rule in rules
    ]


def resolve(event: OutboxEvent, prefix: str, loaded: dict, outcome: Outcome):
    type_id = getattr(event, f"{prefix}_content_type_id")
    if not type_id:
        return None
    obj = loaded.get((type_id, getattr(event, f"{prefix}_object_id")))
    if obj is None:
        what = "recipient" if prefix == "to" else "related object"
        outcome.errors.append(
            f"The {what} ({ContentType.objects.get_for_id(type_id)} "
            f"{getattr(event, f'{prefix}_object_id')}) no longer exists."
        )
    return obj


def finalize(token: uuid.UUID, outcomes: list[Outcome]) -> DrainSummary:
    summary = DrainSummary()
    claimed = OutboxEvent.objects.filter(claim_token=token)
    now = timezone.now()
    dispatched = [o.event.pk for o in outcomes if o.ok]
    if dispatched:
        summary.dispatched = claimed.filter(pk__in=dispatched).update(
            status=OutboxStatus.DISPATCHED,
            dispatched_at=now,
            last_error="",
            claim_token=None,
            updated_at=now,
        )
        lost = len(dispatched) - summary.dispatched
        summary.lost_lease += lost
        # Checked once per batch: without INFO logging, no per-event work on the hot path.
        if logger.isEnabledFor(logging.INFO) or (lost and logger.isEnabledFor(logging.WARNING)):
            log_dispatched(token, [o for o in outcomes if o.ok], lost, now)
    for outcome in outcomes:
        if outcome.ok:
            continue
        event = outcome.event
        error = "; ".join(outcome.errors)
        if outcome.retryable and event.attempts < outbox_settings.max_attempts:
            fields = {"available_at": now + backoff(event.attempts)}
            counter = "retried"
        else:
            if outcome.retryable:
                error = f"Gave up after {event.attempts} attempts: {error}"
            fields = {"status": OutboxStatus.DEAD}
            counter = "dead"
        changed = claimed.filter(pk=event.pk).update(
            last_error=error, claim_token=None, updated_at=now, **fields
        )
        if changed:
            setattr(summary, counter, getattr(summary, counter) + 1)
            retry_at = fields.get("available_at")
            log_event(
                logging.WARNING,
                counter,
                str(token),
                event,
                providers=outcome.providers,
                error=error,
                retry_at=retry_at.isoformat() if retry_at else "",
            )
        else:
            summary.lost_lease += 1
            log_event(
                logging.WARNING,
                "lost_lease",
                str(token),
                event,
                providers=outcome.providers,
                error=error,
            )
    return summary


def log_dispatched(token: uuid.UUID, outcomes: list[Outcome], lost: int, now) -> None:
    """One record per dispatched event; ``lost_lease`` for those another relay took over (found
    with one query, only when the batch's UPDATE matched fewer rows than it sent)."""
    lost_ids: set = set()
    if lost:
        ids = [outcome.event.pk for outcome in outcomes]
        ours = OutboxEvent.objects.filter(
            pk__in=ids, status=OutboxStatus.DISPATCHED, dispatched_at=now
        )
        lost_ids = set(ids) - set(ours.values_list("pk", flat=True))
    token_text = str(token)
    for outcome in outcomes:
        if outcome.event.pk in lost_ids:
            log_event(logging.WARNING, "lost_lease", token_text, outcome.event, outcome.providers)
        else:
            log_event(logging.INFO, "dispatched", token_text, outcome.event, outcome.providers)


def log_event(
    level: int,
    outcome: str,
    token_text: str,
    event: OutboxEvent,
    providers: list[str] | None = None,
    error: str = "",
    retry_at: str = "",
) -> None:
    """One ``outbox.event`` record (see :mod:`outbox.logging`): the same fields in the message's
    arguments and as attributes of the record, for a JSON formatter."""
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
    }
    logger.log(level, EVENT_ERROR_MESSAGE if error else EVENT_MESSAGE, fields, extra=fields)


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(
        outbox_settings.backoff_max_seconds,
        outbox_settings.backoff_seconds * 2 ** max(attempts - 1, 0),
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def prune(older_than_days: float | None = None) -> int:
    """Delete dispatched and cancelled events older than the retention period; never unsent ones."""
    days = outbox_settings.retention_days if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OutboxEvent.objects.filter(
        status__in=[OutboxStatus.DISPATCHED, OutboxStatus.CANCELLED], updated_at__lt=cutoff
    ).delete()
    return deleted
