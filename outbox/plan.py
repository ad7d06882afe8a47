"""Planning: the messages claimed events ask for, one ``SendRequest`` per rule, with their
recipients and related objects loaded for the whole batch (one query per content type)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError

from django_communication import SendRequest
from django_communication.attachments import stored_list

from .conf import DEFERRED_SEND, Rule, outbox_settings
from .deferred import deferred_requests
from .models import OutboxEvent
from .outcomes import EventOutcome


def plan_batch(outcomes: list[EventOutcome]) -> list[tuple[EventOutcome, Rule, SendRequest]]:
    """Every message the outcomes' events ask for; records on each outcome why it has none."""
    events = [outcome.event for outcome in outcomes]
    recipients = load_references(events, "to")
    related = load_references(events, "related")
    return [
        (outcome, rule, request)
        for outcome in outcomes
        for rule, request in plan(outcome, recipients, related)
    ]


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


def plan(outcome: EventOutcome, recipients: dict, related: dict) -> list[tuple[Rule, SendRequest]]:
    """The messages an event asks for, one per rule; records why there are none."""
    event = outcome.event
    if event.attempts > outbox_settings.max_attempts:
        # Claimed again and again without a finished batch: processing it kills the relay.
        outcome.errors.append(f"Claimed {event.attempts} times without finishing.")
        return []
    if event.event_type == DEFERRED_SEND:
        return deferred_requests(event.context)
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
                language=rule.language or event.language or None,
                attachments=stored_list(event.attachments) or None,
                optional_attachments=True,
            ),
        )
        for rule in rules
    ]


def resolve(event: OutboxEvent, prefix: str, loaded: dict, outcome: EventOutcome):
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
