"""outbox.cancel(): unsent events taken back in the caller's transaction."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from django_communication.exceptions import ProviderError
from django_communication.providers import memory
from outbox import InvalidEventError, cancel, emit
from outbox.claim import claim
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from tests.events import make_due, reload
from tests.helpers import Boom
from tests.testapp.models import Booking


def reminder(customer, booking, ref="BK1", **kwargs) -> OutboxEvent:
    """A reminder for tomorrow, as a booking system would schedule it."""
    return emit(
        "booking.confirmed",
        to=customer,
        context={"ref": ref},
        related_object=booking,
        available_at=timezone.now() + timedelta(days=1),
        **kwargs,
    )


@pytest.mark.django_db(transaction=True)
def test_a_committed_cancellation_is_never_sent(comm_config, templates, customer, booking, outbox):
    event = reminder(customer, booking, idempotency_key="booking:1:reminder")
    with transaction.atomic():
        assert cancel(idempotency_key="booking:1:reminder", by="booking cancellation") == 1
    row = reload(event)
    assert row.status == OutboxStatus.CANCELLED
    assert row.last_error == "Cancelled by booking cancellation"
    make_due()
    assert drain().processed == 0
    assert memory.messages == []
    assert cancel(idempotency_key="booking:1:reminder") == 0  # already cancelled: untouched
    assert reload(event).last_error == "Cancelled by booking cancellation"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_cancellation_cancels_nothing(
    comm_config, templates, customer, booking, outbox
):
    event = reminder(customer, booking)
    with pytest.raises(Boom), transaction.atomic():
        assert cancel(related_object=booking) == 1
        assert reload(event).status == OutboxStatus.CANCELLED  # inside the transaction
        raise Boom
    row = reload(event)
    assert (row.status, row.last_error) == (OutboxStatus.PENDING, "")
    make_due()
    assert drain().dispatched == 1
    assert [m.subject for m in memory.messages] == ["Booking BK1"]


def test_by_related_object_cancels_only_that_objects_unsent_events(
    comm_config, templates, customer, booking, outbox
):
    other = Booking.objects.create(ref="BK2", customer=customer)
    sent = emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
    assert drain().dispatched == 1
    mine = [
        reminder(customer, booking),
        emit("booking.note", to=customer, context={"ref": "BK1"}, related_object=booking),
    ]
    unrelated = reminder(customer, other, "BK2")
    no_object = emit("booking.confirmed", to=customer, context={"ref": "BK3"})

    assert cancel(related_object=booking) == 2
    assert {e.status for e in map(reload, mine)} == {OutboxStatus.CANCELLED}
    assert reload(sent).status == OutboxStatus.DISPATCHED  # dispatched: untouched
    assert reload(sent).last_error == ""
    assert reload(unrelated).status == reload(no_object).status == OutboxStatus.PENDING
    make_due()
    assert drain().dispatched == 2
    assert sorted(m.subject for m in memory.messages) == [
        "Booking BK1",
        "Booking BK2",
        "Booking BK3",
    ]


def test_event_type_narrows_the_cancellation(db, customer, booking, outbox):
    kept = emit("booking.confirmed", to=customer, related_object=booking)
    gone = emit("booking.reminder", to=customer, related_object=booking)
    assert cancel(related_object=booking, event_type="booking.reminder") == 1
    assert reload(gone).status == OutboxStatus.CANCELLED
    assert reload(kept).status == OutboxStatus.PENDING


def test_a_dead_event_is_cancelled_too(db, customer, booking, outbox):
    """Unsent either way: cancelled, an operator's "Retry now" cannot send it any more."""
    event = emit("booking.confirmed", to=customer, related_object=booking)
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD)
    assert cancel(related_object=booking) == 1
    assert reload(event).status == OutboxStatus.CANCELLED


def test_an_event_a_relay_holds_is_left_alone_and_reported(
    templates, customer, booking, outbox, scripted, caplog
):
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
    token, _ = claim(10)  # a relay is sending it right now
    result = cancel(related_object=booking)
    assert (result, result.in_flight) == (0, 1)
    assert "left 1 event(s) a relay is dispatching right now" in caplog.text
    assert reload(event).claim_token == token
    # Once the lease has run out (the relay died), it can be cancelled.
    make_due()
    result = cancel(related_object=booking)
    assert (result, result.in_flight) == (1, 0)


def test_a_retrying_event_is_cancelled(templates, customer, booking, outbox, scripted):
    scripted.fail["email"] = ProviderError("throttled", retryable=True)
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
    assert drain().retried == 1
    assert cancel(related_object=booking) == 1
    scripted.fail.clear()
    make_due()
    assert drain().processed == 0
    assert reload(event).status == OutboxStatus.CANCELLED and len(scripted.calls) == 1


def test_cancelling_an_ordered_event_releases_the_next(templates, customer, outbox, scripted):
    first = emit(
        "booking.confirmed",
        to=customer,
        context={"ref": "first"},
        ordering_key="booking:1",
        idempotency_key="first",
        available_at=timezone.now() + timedelta(days=1),
    )
    emit("booking.confirmed", to=customer, context={"ref": "second"}, ordering_key="booking:1")
    assert drain().processed == 0  # held back by the delayed first
    assert cancel(idempotency_key="first") == 1
    assert drain().dispatched == 1
    assert reload(first).status == OutboxStatus.CANCELLED


def test_cancel_needs_a_selector_and_a_saved_object(db, customer, outbox):
    with pytest.raises(InvalidEventError, match="needs an idempotency_key or a related_object"):
        cancel()
    with pytest.raises(InvalidEventError, match="needs an idempotency_key"):
        cancel(event_type="booking.confirmed")
    with pytest.raises(InvalidEventError, match="saved model instance"):
        cancel(related_object=Booking(ref="unsaved", customer=customer))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("commit", [True, False])
def test_a_relay_skips_an_event_while_its_cancellation_is_uncommitted(
    comm_config, templates, customer, booking, outbox, commit
):
    """PostgreSQL: the cancelling UPDATE locks the row; the relay's SKIP LOCKED claim passes it
    by, so neither sends it meanwhile nor waits. The outcome is the caller's commit or rollback."""
    event = emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
    relay_saw = []

    def relay():
        try:
            relay_saw.append(drain().processed)
        finally:
            connections.close_all()

    with contextlib.suppress(Boom), transaction.atomic():
        assert cancel(related_object=booking) == 1
        thread = threading.Thread(target=relay)
        thread.start()
        thread.join(30)
        if not commit:
            raise Boom
    assert relay_saw == [0] and memory.messages == []
    assert reload(event).status == (OutboxStatus.CANCELLED if commit else OutboxStatus.PENDING)
    assert drain().processed == (0 if commit else 1)
