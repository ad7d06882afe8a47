"""Providers the tests register through COMMUNICATION["PROVIDERS"]."""

from __future__ import annotations

from django.db import connection, connections

from django_communication.exceptions import ProviderError
from django_communication.models import Channel, Message
from django_communication.providers.base import BaseProvider, EmailProvider

TEST_PROVIDERS = {
    "recording": "tests.providers.RecordingProvider",
    "failing": "tests.providers.FailingProvider",
    "email-only": "tests.providers.EmailOnlyProvider",
}


def committed_status(pk) -> str | None:
    """The row's status as another connection sees it: only committed data is visible there."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                f"SELECT status FROM {Message._meta.db_table} WHERE id = %s",
                [Message._meta.pk.get_db_prep_value(pk, other)],
            )
            row = cursor.fetchone()
    finally:
        other.close()
    return row[0] if row else None


class RecordingProvider(BaseProvider):
    """Records, for every call, what the database says about the message at that moment."""

    name = "recording"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    calls: list[dict] = []
    #: Exceptions to raise on the next calls, one per call (None: succeed), before succeeding.
    fail_with: list[Exception] = []
    check_committed = False

    @classmethod
    def reset(cls, check_committed: bool = False) -> None:
        cls.calls = []
        cls.fail_with = []
        cls.check_committed = check_committed

    def send(self, message: Message) -> str:
        call = {
            "pk": message.pk,
            "to": message.to_address,
            "status": Message.objects.get(pk=message.pk).status,
            "in_atomic_block": connection.in_atomic_block,
        }
        if self.check_committed:
            call["committed_status"] = committed_status(message.pk)
        type(self).calls.append(call)
        if self.fail_with:
            error = self.fail_with.pop(0)
            if error is not None:  # None: this call succeeds
                raise error
        return f"rec-{len(self.calls)}"


class FailingProvider(BaseProvider):
    name = "failing"
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    error: Exception = ProviderError("mailbox unavailable", retryable=False)

    def send(self, message: Message) -> str:
        raise type(self).error


class EmailOnlyProvider(EmailProvider):
    name = "email-only"

    def send(self, message: Message) -> str:
        return "email-only-1"
