"""Provider fallback: ``COMMUNICATION["FALLBACK"] = {"email": ["django"]}``.

``with_fallback()`` wraps the channel's provider in a ``FallbackProvider``: when a provider fails
a message with a retryable error (an outage, throttling past its own retries, a 5xx), the next
provider of the channel's list gets it, and so on; a permanent error (a rejected address, a bad
request) stops there. The message is recorded once, ``sent`` by the provider that accepted it
(``Message.provider``) with what failed before in ``Message.error`` (``"ses:
EndpointConnectionError: ... (retryable); sent by django"``), or ``failed`` with every provider's
error. A fallback that cannot be built (unknown, wrong channel) counts as a retryable failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from .conf import comm_settings
from .exceptions import ConfigurationError, ProviderConfigurationError, ProviderError
from .providers.base import BaseProvider, Receipt
from .providers.registry import provider_class, provider_for_channel
from .ratelimit import pacer

if TYPE_CHECKING:
    from .models import Message


def with_fallback(provider: BaseProvider, channel: str) -> BaseProvider:
    """``provider``, wrapped in the channel's fallback chain if ``FALLBACK`` names one."""
    fallback = comm_settings.fallback
    names = fallback.get(channel) if fallback else None
    chain = [name for name in dict.fromkeys(names or ()) if name != provider.name]
    return FallbackProvider(provider, channel, chain) if chain else provider


class FallbackProvider(BaseProvider):
    """``primary``, then the providers ``names`` (built, opened and rate-limited when first
    needed) for each message the one before failed retryably. Its ``name`` is the primary's;
    it is thread-safe when every provider of the chain is (each lane has its own sessions)."""

    def __init__(self, primary: BaseProvider, channel: str, names: Sequence[str]) -> None:
        super().__init__(primary.config)
        self.primary, self.channel, self.names = primary, channel, list(names)
        self.name = primary.name
        self._local = threading.local()

    @property
    def thread_safe(self) -> bool:  # type: ignore[override]
        def safe(name: str) -> bool:
            try:
                return provider_class(name).thread_safe
            except ConfigurationError:
                return True  # never built: each message records the error

        return self.primary.thread_safe and all(safe(name) for name in self.names)

    @contextmanager
    def session(self) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(self.primary.session())
            self._local.stack, self._local.opened = stack, set()
            try:
                yield
            finally:
                self._local.stack = None

    def prepare(self, message: Message) -> None:
        self.primary.prepare(message)

    def send(self, message: Message) -> Receipt:
        failures: list[str] = []
        last: ProviderError | None = None
        for name in [self.primary.name, *self.names]:
            try:
                provider = self.primary if name == self.primary.name else self.fallback(name)
            except ConfigurationError as exc:
                failures.append(str(ProviderError(str(exc), retryable=True, provider=name)))
                continue
            try:
                answer = provider.send(message)
            except Exception as exc:
                last = ProviderError.of(exc, provider.name)
                failures.append(str(last))
                if not last.retryable:
                    break
                continue
            if isinstance(answer, Receipt):
                answer = answer.message_id
            return Receipt(str(answer or ""), provider.name, tuple(failures))
        assert last is not None  # the primary was tried
        kind = ProviderConfigurationError if isinstance(last, ConfigurationError) else ProviderError
        raise kind(
            last.description,
            retryable=last.retryable,
            provider=last.provider,
            failures=failures if len(failures) > 1 else (),
        ) from last

    def fallback(self, name: str) -> BaseProvider:
        """The fallback ``name``, its session opened for the rest of this one, its send slot
        (RATE_LIMITS) taken."""
        provider = provider_for_channel(self.channel, name)
        stack = getattr(self._local, "stack", None)
        if stack is not None and name not in self._local.opened:
            stack.enter_context(provider.session())
            self._local.opened.add(name)
        pace = pacer(name)
        if pace is not None:
            pace()
        return provider
