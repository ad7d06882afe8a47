"""Sends inside a transaction: whether they wait for its commit, and who sends them after it.

``COMMUNICATION["IN_TRANSACTION"]`` (or send()'s ``in_transaction=``) chooses, when send() is
called inside ``transaction.atomic()``: ``"defer"`` (write the Message ``pending`` in the
caller's transaction and hand it to the provider only after the commit), ``"now"`` (call the
provider at once, as outside a transaction) or ``"raise"`` (SendInTransactionError).

Who sends a deferred message after the commit is the registered *deferrer*: by default
``transaction.on_commit`` in this process; an app that can do it durably (the outbox) registers
its own in its ``AppConfig.ready()``, so this package never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import connections

from .conf import comm_settings
from .exceptions import ConfigurationError, InvalidArgumentError, SendInTransactionError

if TYPE_CHECKING:
    from .models import Message

DEFER, NOW, RAISE = "defer", "now", "raise"
MODES = (DEFER, NOW, RAISE)

#: The idempotency key a deferred message without one of its own is given, so that whoever
#: sends it after the commit finds it by key (send_many()'s idempotency path).
DEFERRED_KEY_PREFIX = "deferred:"

#: ``(messages, using)``: arrange for the saved ``pending`` messages to be sent once the
#: transaction open on database ``using`` commits, and never if it rolls back. The messages
#: all carry an idempotency key; sending them is ``send_many([SendRequest(idempotency_key=k)])``.
Deferrer = Callable[[list["Message"], str], None]

_deferrer: Deferrer | None = None


def register_deferrer(deferrer: Deferrer | None) -> Deferrer | None:
    """Make ``deferrer`` send deferred messages (None: back to on_commit); returns the previous
    one. The outbox calls this in its ``AppConfig.ready()``."""
    global _deferrer
    previous, _deferrer = _deferrer, deferrer
    return previous


def registered_deferrer() -> Deferrer | None:
    return _deferrer


def mode(override: str | None = None) -> str:
    """The behaviour inside a transaction: ``override`` (send()'s argument) or the setting."""
    value = comm_settings.in_transaction if override is None else override
    if value not in MODES:
        choices = ", ".join(map(repr, MODES))
        if override is None:
            raise ConfigurationError(
                f"COMMUNICATION['IN_TRANSACTION'] = {value!r} is not one of {choices}."
            )
        raise InvalidArgumentError(f"in_transaction={value!r} is not one of {choices}.")
    return value


def in_transaction(using: str) -> bool:
    """Whether the caller holds a transaction open on ``using``: an ``atomic()`` block other
    than the ones Django's TestCase wraps each test in (they stand for the autocommit the code
    under test runs in, as for ``atomic(durable=True)``)."""
    connection = connections[using]
    return connection.in_atomic_block and any(
        not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


def deferring(override: str | None, using: str) -> bool:
    """True when the send must wait for the commit; raises SendInTransactionError when sending
    inside a transaction is refused (the ``"raise"`` mode)."""
    chosen = mode(override)
    if chosen == NOW or not in_transaction(using):
        return False
    if chosen == RAISE:
        raise SendInTransactionError(
            "send() was called inside a transaction (atomic()) with in_transaction='raise'.",
        )
    return True
