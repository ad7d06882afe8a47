"""emit(), emit_many() and bind_signal(): what the producer side of the outbox guarantees."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, transaction
from django.dispatch import Signal
from django.test.utils import CaptureQueriesContext

from django_communication.exceptions import CommunicationError
from django_communication.models import Message, MessageTemplate
from django_communication.providers import memory
from outbox import InvalidEventError, bind_signal, emit, emit_many
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain
from outbox.wakeup import wake
from tests.helpers import Boom
from tests.rules import RULES
from tests.testapp.models import Booking, Customer
from tests.waiting import DEADLINE_SECONDS, backend_pid, wait_for, waiting_on_a_lock


def on_commit_wakes() -> int:
    return sum(1 for _, callback, *_ in connection.run_on_commit if callback is wake)


# ------------------------------------------------------------------------- transactions


@pytest.mark.django_db(transaction=True)
def test_rollback_leaves_no_event_no_message_and_sends_nothing(
    comm_config, templates, customer, booking, settings
):
    # The wake-up is on (django-q2 runs tasks synchronously in the tests): a rollback must not
    # reach the relay either.
    settings.OUTBOX = {"RULES": RULES, "WAKE_INTERVAL_SECONDS": 0}
    with pytest.raises(Boom), transaction.atomic():
        emit("booking.confirmed", to=customer, context={"ref": "BK1"}, related_object=booking)
        assert OutboxEvent.objects.count() == 1  # written in the caller's transaction
        raise Boom
    assert OutboxEvent.objects.count() == 0
    assert drain().processed == 0
    assert Message.objects.count() == 0
    assert memory.messages == []


@pytest.mark.django_db(transaction=True)
def test_commit_writes_the_event_row(customer, booking, outbox):
    with transaction.atomic():
        event = emit(
            "booking.confirmed",
            to=customer,
            context={"ref": "BK1"},
            related_object=booking,
            channel="email",
        )
    row = OutboxEvent.objects.get()
    assert row.pk == event.pk
    assert (row.event_type, row.status, row.context, row.channel) == (
        "booking.confirmed",
        OutboxStatus.PENDING,
        {"ref": "BK1"},
        "email",
    )
    assert (row.to_content_type.model_class(), row.to_object_id) == (Customer, str(customer.pk))
    assert (row.related_content_type.model_class(), row.related_object_id) == (
        Booking,
        str(booking.pk),
    )
    assert row.attempts == 0 and row.claim_token is None and row.idempotency_key is None


def test_available_at_delays_the_event(comm_config, templates, customer, outbox):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    emit("booking.confirmed", to=customer, context={"ref": "BK1"}, available_at=later)
    assert drain().processed == 0
    OutboxEvent.objects.update(available_at=datetime.now(timezone.utc))
    assert drain().dispatched == 1


# ------------------------------------------------------------------------- idempotency


def test_repeated_idempotency_key_returns_the_first_event(db, customer, outbox):
    first = emit("booking.confirmed", to=customer, context={"n": 1}, idempotency_key="bk1:conf")
    again = emit("booking.confirmed", to=customer, context={"n": 2}, idempotency_key="bk1:conf")
    assert again.pk == first.pk
    assert again.context == {"n": 1}
    assert OutboxEvent.objects.filter(idempotency_key="bk1:conf").count() == 1


@pytest.mark.django_db(transaction=True)
def test_idempotency_key_holds_across_transactions(customer, outbox):
    with transaction.atomic():
        first = emit("booking.confirmed", to=customer, idempotency_key="bk1:conf")
    with transaction.atomic():
        again = emit("booking.confirmed", to=customer, idempotency_key="bk1:conf")
        other = emit("booking.confirmed", to=customer, idempotency_key="bk2:conf")
    assert again.pk == first.pk
    assert other.pk != first.pk
    assert OutboxEvent.objects.count() == 2


def race_on_key(key, customer, producer):
    """Emit ``key`` in an open transaction while ``producer(result)`` runs in another thread
    and blocks on the unique index; commit, and return (our event, the producer's result)."""
    result: dict = {}
    producer_backend: list[int] = []

    def run():
        try:
            producer_backend.append(backend_pid())
            producer(result)
        except Exception as exc:  # pragma: no cover - reported below
            result["error"] = exc
        finally:
            connections.close_all()

    with transaction.atomic():
        first = emit("booking.confirmed", to=customer, idempotency_key=key)
        thread = threading.Thread(target=run)
        thread.start()
        # The race, for certain: the other INSERT waits on the unique index for our commit.
        wait_for(
            lambda: producer_backend and waiting_on_a_lock(producer_backend),
            "the other transaction's INSERT to wait for ours",
        )
        assert "error" not in result and thread.is_alive()
    thread.join(DEADLINE_SECONDS)
    assert "error" not in result, result.get("error")
    return first, result


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_idempotency_key_yields_one_event_and_a_usable_transaction(customer, outbox):
    """Two transactions emit the same key at once: the second waits for the first, gets its
    event, and its own transaction goes on (the failed INSERT was inside a savepoint)."""

    def second_producer(result):
        with transaction.atomic():
            result["event"] = emit("booking.confirmed", to=customer, idempotency_key="race")
            result["other"] = emit("booking.confirmed", to=customer)

    first, result = race_on_key("race", customer, second_producer)
    assert "error" not in result, result.get("error")
    assert result["event"].pk == first.pk
    assert OutboxEvent.objects.filter(idempotency_key="race").count() == 1
    assert OutboxEvent.objects.filter(pk=result["other"].pk).exists()


# ------------------------------------------------------------------------- bad input


def assert_invalid(match: str, **kwargs) -> InvalidEventError:
    arguments = {"event_type": "booking.confirmed", **kwargs}
    with pytest.raises(InvalidEventError, match=match) as info:
        emit(**arguments)
    assert isinstance(info.value, CommunicationError)
    assert isinstance(info.value, ValueError)
    assert OutboxEvent.objects.count() == 0
    return info.value


def test_context_that_is_not_serialisable_names_the_key(db, outbox):
    assert_invalid(
        r"not JSON-serialisable at context\['when'\] \(object\)", context={"when": object()}
    )


def test_context_path_is_given_for_nested_values(db, customer, outbox):
    error = assert_invalid(
        r"context\['booking'\]\['items'\]\[1\] \(Customer\)",
        context={"booking": {"ref": "BK1", "items": ["ok", customer]}},
    )
    assert "Customer" in str(error)


def test_context_with_a_circular_reference_is_rejected(db, outbox):
    loop: dict = {"ref": "BK1"}
    loop["items"] = [1, loop]
    assert_invalid(
        r"context\['booking'\]\['items'\]\[1\] \(a circular reference\)",
        context={"booking": loop},
    )


def test_context_with_a_non_string_key_is_rejected(db, outbox):
    assert_invalid(
        r"context\['outer'\] \(a key that is not a string\)", context={"outer": {("a", "b"): 1}}
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_context_with_nan_or_infinity_is_rejected_before_writing(db, outbox, value):
    """JSON has no NaN: PostgreSQL's jsonb refuses it, which would abort the caller's
    transaction. emit() must refuse it first, on every database."""
    assert_invalid(r"context\['ratio'\] \(float\)", context={"ratio": value})


def test_context_with_a_nul_character_is_rejected_before_writing(db, outbox):
    """PostgreSQL cannot store \\u0000 in jsonb; an escaped backslash followed by u0000 is fine."""
    assert_invalid(r"context\['note'\]\[0\] \(str\)", context={"note": ["a\x00b"]})
    event = emit("booking.confirmed", context={"path": "C:\\u0000", "n": "\\\\u0000"})
    assert OutboxEvent.objects.get(pk=event.pk).context == {"path": "C:\\u0000", "n": "\\\\u0000"}


def test_bad_input_inside_a_transaction_leaves_it_usable(db, customer, outbox):
    with transaction.atomic():
        with pytest.raises(InvalidEventError):
            emit("booking.confirmed", context={"ratio": float("nan")})
        emit("booking.confirmed", to=customer)  # the transaction was not aborted
    assert OutboxEvent.objects.count() == 1


def test_context_must_be_a_dict(db, outbox):
    assert_invalid(r"context=\.\.\.\) must be a dict, not list", context=["a"])


def test_unsaved_recipient_is_rejected(db, outbox):
    assert_invalid(r"emit\(to=\.\.\.\) must be a saved model instance", to=Customer(name="x"))


def test_unsaved_related_object_is_rejected(db, customer, outbox):
    assert_invalid(
        r"emit\(related_object=\.\.\.\) must be a saved model instance",
        related_object=Customer(name="x"),
    )


def test_unsaved_instance_with_a_default_primary_key_is_rejected(db, customer, outbox):
    """A UUID primary key is set before the first save: pk is not None, yet nothing is stored."""
    unsaved = Booking(ref="BK9", customer=customer)
    assert unsaved.pk is not None
    assert_invalid(
        r"emit\(related_object=\.\.\.\) must be a saved model instance", related_object=unsaved
    )
    assert_invalid(r"emit\(to=\.\.\.\) must be a saved model instance", to=unsaved)


def test_recipient_must_be_a_model_instance(db, outbox):
    assert_invalid(r"emit\(to=\.\.\.\) must be a saved model instance", to="john@example.com")


@pytest.mark.parametrize("event_type", ["", "   ", None, 42])
def test_event_type_must_be_a_non_empty_string(db, outbox, event_type):
    assert_invalid("non-empty event_type", event_type=event_type)


def test_an_event_type_no_rule_handles_is_refused_in_the_producer(db, customer, outbox):
    with transaction.atomic():
        with pytest.raises(InvalidEventError, match=r"No rule for event type 'booking\.confrimed'"):
            emit("booking.confrimed", to=customer)
        with pytest.raises(InvalidEventError, match=r"'booking\.unknown'"):
            emit_many([{"event_type": "booking.confirmed"}, {"event_type": "booking.unknown"}])
        emit("booking.confirmed", to=customer)  # the transaction is still usable
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == ["booking.confirmed"]


def test_unknown_channel_is_rejected(db, outbox):
    assert_invalid(r"Unknown channel 'fax'; expected one of email, sms", channel="fax")


def test_dates_decimals_and_uuids_in_context_are_stored_and_rendered(
    comm_config, templates, customer, outbox
):
    MessageTemplate.objects.filter(key="booking_confirmation").update(
        email_body_text="Confirmed {{ ref }} on {{ day }} for {{ price }}"
    )
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    context = {
        "ref": "BK1",
        "day": date(2030, 1, 2),
        "at": datetime(2030, 1, 2, 10, 30, tzinfo=timezone.utc),
        "price": Decimal("19.90"),
        "id": ident,
        "span": timedelta(hours=2),
        "items": [date(2030, 1, 3), Decimal("1.5")],
    }
    event = emit("booking.confirmed", to=customer, context=context)
    # The values come back with their types (tests/test_outbox_context.py renders each).
    assert OutboxEvent.objects.get(pk=event.pk).context == context
    assert drain().dispatched == 1
    [message] = memory.messages
    # As send() renders them: a date under DATE_FORMAT, no longer its ISO string.
    assert message.body_text == "Confirmed BK1 on Jan. 2, 2030 for 19.90"


# ------------------------------------------------------------------------- cost


@pytest.mark.parametrize("wake_on_commit", [False, True])
def test_emit_is_exactly_one_insert(db, customer, booking, settings, wake_on_commit):
    settings.OUTBOX = {"RULES": RULES, "WAKE_ON_COMMIT": wake_on_commit}
    # ContentType.objects caches per process; in a running app it is warm.
    ContentType.objects.get_for_model(customer)
    ContentType.objects.get_for_model(booking)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            emit(
                "booking.confirmed",
                to=customer,
                related_object=booking,
                context={"ref": "BK1"},
                channel="email",
            )
        assert on_commit_wakes() == (1 if wake_on_commit else 0)
    assert len(queries) == 1, queries.captured_queries
    assert queries[0]["sql"].startswith("INSERT INTO")


def test_emit_many_is_one_insert_and_returns_saved_events(db, customer, booking, outbox):
    ContentType.objects.get_for_model(customer)
    with CaptureQueriesContext(connection) as queries:
        events = emit_many(
            [
                {"event_type": "booking.confirmed", "to": customer, "context": {"n": n}}
                for n in range(20)
            ]
        )
    assert len(queries) == 1, queries.captured_queries
    assert queries[0]["sql"].startswith("INSERT INTO")
    assert len(events) == 20 == OutboxEvent.objects.count()
    assert {e.pk for e in events} == set(OutboxEvent.objects.values_list("pk", flat=True))


def test_emit_many_skips_taken_keys_and_returns_what_it_wrote(db, customer, outbox):
    first = emit("booking.confirmed", to=customer, idempotency_key="k1")
    written = emit_many(
        [
            {"event_type": "booking.confirmed", "to": customer, "idempotency_key": "k1"},
            {"event_type": "booking.confirmed", "to": customer, "idempotency_key": "k2"},
            {"event_type": "booking.confirmed", "to": customer, "idempotency_key": "k2"},
            {"event_type": "booking.confirmed", "to": customer},
        ]
    )
    assert OutboxEvent.objects.count() == 3
    assert OutboxEvent.objects.get(idempotency_key="k1").pk == first.pk
    rows = {row.pk: row for row in OutboxEvent.objects.exclude(pk=first.pk)}
    assert len(written) == 2
    assert {event.pk for event in written} == set(rows)  # saved events, with their keys
    assert sorted(event.idempotency_key or "" for event in written) == ["", "k2"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_emit_many_racing_a_producer_on_a_key_skips_only_that_key(customer, outbox):

    def bulk_producer(result):
        with transaction.atomic():
            result["written"] = emit_many(
                [
                    {"event_type": "booking.confirmed", "idempotency_key": "race"},
                    {"event_type": "booking.confirmed", "idempotency_key": "free"},
                    {"event_type": "booking.confirmed", "context": {"n": 1}},
                ]
            )

    first, result = race_on_key("race", customer, bulk_producer)
    assert OutboxEvent.objects.count() == 3
    assert OutboxEvent.objects.get(idempotency_key="race").pk == first.pk
    written = result["written"]
    assert [event.idempotency_key for event in written] == ["free", None]
    assert {event.pk for event in written} == set(
        OutboxEvent.objects.exclude(pk=first.pk).values_list("pk", flat=True)
    )


def test_emit_many_validates_every_item_before_writing(db, customer, outbox):
    with pytest.raises(InvalidEventError, match=r"context\['when'\]"):
        emit_many(
            [
                {"event_type": "booking.confirmed", "to": customer},
                {"event_type": "booking.confirmed", "context": {"when": object()}},
            ]
        )
    assert OutboxEvent.objects.count() == 0


# ------------------------------------------------------------------------- signal binding


def bind_booking_signal(signal: Signal, **extra):
    return bind_signal(
        signal,
        "booking.confirmed",
        to=lambda booking, **kwargs: booking.customer,
        context=lambda booking, **kwargs: {"ref": booking.ref},
        related_object=lambda booking, **kwargs: booking,
        idempotency_key=lambda booking, **kwargs: f"booking:{booking.pk}:confirmed",
        **extra,
    )


@pytest.mark.django_db(transaction=True)
def test_bound_signal_writes_the_event_in_the_senders_transaction(customer, booking, outbox):
    booking_confirmed = Signal()
    bind_booking_signal(booking_confirmed)

    with pytest.raises(Boom), transaction.atomic():
        booking_confirmed.send(sender=Booking, booking=booking)
        assert OutboxEvent.objects.count() == 1
        raise Boom
    assert OutboxEvent.objects.count() == 0

    with transaction.atomic():
        [(_, event)] = booking_confirmed.send(sender=Booking, booking=booking)
    row = OutboxEvent.objects.get()
    assert row.pk == event.pk
    assert row.event_type == "booking.confirmed"
    assert row.context == {"ref": "BK1"}
    assert row.to_object_id == str(customer.pk)
    assert row.related_object_id == str(booking.pk)
    assert row.idempotency_key == f"booking:{booking.pk}:confirmed"
    booking_confirmed.send(sender=Booking, booking=booking)  # the key makes it a no-op
    assert OutboxEvent.objects.count() == 1


def test_bound_signal_honours_sender_and_reports_bad_input(db, customer, booking, outbox):
    booking_confirmed = Signal()
    bind_booking_signal(booking_confirmed, sender=Booking)
    booking_confirmed.send(sender=Customer, booking=booking)
    assert OutboxEvent.objects.count() == 0
    with pytest.raises(InvalidEventError, match="saved model instance"):
        booking_confirmed.send(sender=Booking, booking=Booking(ref="BK2", customer=customer))
    assert OutboxEvent.objects.count() == 0
