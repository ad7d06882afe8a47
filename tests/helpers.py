"""Small pieces several test modules share."""

from __future__ import annotations


class Boom(Exception):
    """Raised inside transaction.atomic() to roll it back."""


def assert_nothing_sent() -> None:
    from django_communication.models import Message
    from django_communication.providers import memory

    assert not Message.objects.exists()
    assert memory.messages == []
