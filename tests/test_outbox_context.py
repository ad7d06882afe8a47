"""emit()'s context reaches the template with the types it had: the same values as send()."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils.translation import gettext_lazy

from django_communication import send
from django_communication.models import Message
from outbox import emit
from outbox.models import OutboxEvent, OutboxStatus
from outbox.relay import drain

# One line per type, each through a filter or attribute that only the real type answers: a
# string renders empty (|date, |time, .hex, .days) or takes the other branch (> 10).
BODY = "\n".join(
    [
        'date {{ when|date:"d M Y" }}',
        'datetime {{ at|date:"d M Y H:i:s.u" }}',
        'time {{ clock|time:"H:i" }}',
        "timedelta {{ wait.days }}d {{ wait.seconds }}s",
        "decimal {% if amount > 10 %}over ten{% else %}NOT A NUMBER{% endif %} {{ amount }}",
        "uuid {{ ref.hex }}",
        'nested {% for day in days %}{{ day|date:"D" }} {% endfor %}{{ booking.on|date:"d/m" }}',
        "tagged-looking {{ raw }}",
        "lazy {{ label }}",
    ]
)

CONTEXT = {
    "when": datetime.date(2025, 5, 1),
    "at": datetime.datetime(2025, 5, 1, 14, 30, 5, 123456, tzinfo=datetime.timezone.utc),
    "clock": datetime.time(9, 15),
    "wait": datetime.timedelta(days=2, seconds=30),
    "amount": decimal.Decimal("12.50"),
    "ref": uuid.UUID("6f1c2d3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5"),
    "days": [datetime.date(2025, 5, 3), datetime.date(2025, 5, 4)],
    "booking": {"on": datetime.date(2025, 6, 7)},
    "raw": {"$type": "date", "value": "2025-05-01"},  # the caller's own dict, not a tag
    "label": gettext_lazy("Confirmed"),
}

EXPECTED = "\n".join(
    [
        "date 01 May 2025",
        "datetime 01 May 2025 14:30:05.123456",
        "time 09:15",
        "timedelta 2d 30s",
        "decimal over ten 12.50",
        "uuid 6f1c2d3e4a5b4c6d8e9fa0b1c2d3e4f5",
        "nested Sat Sun 07/06",
        "tagged-looking {'$type': 'date', 'value': '2025-05-01'}",
        "lazy Confirmed",
    ]
)


@pytest.fixture
def typed(make_template, comm_config, settings):
    settings.OUTBOX = {
        "RULES": {"typed": {"template_key": "typed", "channel": "email"}},
        "WAKE_ON_COMMIT": False,
    }
    make_template("typed", name="Typed", email_subject="T", email_body_text=BODY)


def test_every_listed_type_renders_as_through_send(typed, customer):
    direct = send(to=customer, template_key="typed", context=CONTEXT)
    event = emit("typed", to=customer, context=CONTEXT)
    assert drain().dispatched == 1
    [relayed] = event.messages()
    assert direct.body_text == EXPECTED
    assert relayed.body_text == direct.body_text


def test_the_event_reads_back_the_values_it_was_given(typed, customer):
    event = emit("typed", to=customer, context=CONTEXT)
    stored = OutboxEvent.objects.get(pk=event.pk).context
    assert stored == {**CONTEXT, "label": "Confirmed"}
    assert type(stored["at"]) is datetime.datetime and type(stored["when"]) is datetime.date
    assert stored["at"].tzinfo is not None
    # Plain values stay plain JSON, so key lookups still find them.
    emit("typed", to=customer, context={"booking": {"ref": "BK9", "on": CONTEXT["when"]}})
    assert OutboxEvent.objects.filter(context__booking__ref="BK9").count() == 1


def test_rows_in_the_old_encoding_still_render(typed, customer):
    event = emit("typed", to=customer)
    # What the outbox stored before typed values: DjangoJSONEncoder's strings.
    legacy = {key: value for key, value in CONTEXT.items() if key != "raw"}
    # Written past the field (Django 4.2 encodes a Value through the target field's encoder).
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET context = %s WHERE id = %s",
            [json.dumps(legacy, cls=DjangoJSONEncoder), event.pk.hex],
        )
    assert OutboxEvent.objects.get(pk=event.pk).context["when"] == "2025-05-01"
    assert drain().dispatched == 1
    assert OutboxEvent.objects.get(pk=event.pk).status == OutboxStatus.DISPATCHED
    body = Message.objects.get().body_text
    # Strings, as before: |date cannot format them, the plain value shows as it was stored.
    assert body.startswith("date \ndatetime \n") and "decimal NOT A NUMBER 12.50" in body
