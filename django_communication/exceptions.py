"""Every error the library raises is a CommunicationError.

Subclasses also inherit the matching built-in (ValueError, ImproperlyConfigured, LookupError) so
that generic handlers keep working.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model


class CommunicationError(Exception):
    """Root of every django-communication error.

    ``permanent`` tells a caller that retrying the same call cannot succeed (the outbox sends such
    an event straight to the dead letter).
    """

    permanent = True


class ConfigurationError(CommunicationError, ImproperlyConfigured):
    """A setting or the settings singleton names something that does not exist or cannot work.

    Not permanent: once an administrator fixes the configuration, the same call succeeds.
    """

    permanent = False


class InvalidArgumentError(CommunicationError, ValueError):
    """send() was called with arguments that cannot make a message."""


class SendInTransactionError(CommunicationError, RuntimeError):
    """send() was called inside ``transaction.atomic()`` while ``COMMUNICATION["IN_TRANSACTION"]``
    (or ``in_transaction=``) is ``"raise"``: send after the commit, pass
    ``in_transaction="defer"`` to send when the transaction commits, or emit an outbox event."""

    def __init__(self, description: str) -> None:
        super().__init__(
            f"{description} Send after the commit, pass in_transaction='defer' to send once it "
            "commits, or in_transaction='now' to send at once even if it rolls back."
        )


class TemplateNotFoundError(CommunicationError, LookupError):
    """No active MessageTemplate has the requested key."""


class TemplateRenderError(CommunicationError):
    """A template field failed to compile or to render. ``variable`` names the missing variable
    when a strict template's context lacks one, else it is None."""

    def __init__(self, description: str, *, variable: str | None = None) -> None:
        super().__init__(description)
        self.variable = variable


class InvalidRecipientError(CommunicationError, ValueError):
    """The recipient has no usable address on the chosen channel."""


class ProviderError(CommunicationError):
    """The provider did not accept the message.

    ``message`` is the saved, failed Message; ``retryable`` is True for outages, throttling and
    5xx answers, False for rejections that will fail again (a refused address, a bad request).
    ``failures`` holds, when fallback providers (``FALLBACK``) were tried, each provider's
    failure in order, this one last: what the Message records.
    """

    def __init__(
        self,
        description: str,
        *,
        retryable: bool,
        provider: str = "",
        message: Model | None = None,
        failures: Sequence[str] = (),
    ) -> None:
        super().__init__(description)
        self.description = description
        self.retryable = retryable
        self.permanent = not retryable
        self.provider = provider
        self.message = message
        self.failures = tuple(failures)

    @classmethod
    def of(cls, exc: BaseException, provider: str, message: Model | None = None) -> ProviderError:
        """What provider ``provider`` raised, as a ProviderError about ``message``: a
        ProviderError keeps its description, retryability and failures; anything else is a
        retryable failure described by its repr. A configuration problem (a ConfigurationError,
        or a ProviderConfigurationError) stays one: a ProviderConfigurationError."""
        if isinstance(exc, ProviderError):
            kind = ProviderConfigurationError if isinstance(exc, ConfigurationError) else cls
            error = kind(
                exc.description,
                retryable=exc.retryable,
                provider=exc.provider or provider,
                message=message,
                failures=exc.failures,
            )
        elif isinstance(exc, ConfigurationError):
            error = ProviderConfigurationError(str(exc), provider=provider, message=message)
        else:
            error = cls(repr(exc), retryable=True, provider=provider, message=message)
        error.__cause__ = exc
        return error

    def __str__(self) -> str:
        kind = "retryable" if self.retryable else "permanent"
        name = f"{self.provider}: " if self.provider else ""
        return f"{name}{self.description} ({kind})"


class ProviderConfigurationError(ProviderError, ConfigurationError):
    """The provider cannot send until an administrator fixes its configuration (AWS found no
    credentials, a custom provider raised ConfigurationError...): a ProviderError and a
    ConfigurationError. Retryable: the same message goes out once the configuration is fixed.
    The outbox counts the events it holds up (``outbox_status``, the health view)."""

    def __init__(
        self,
        description: str,
        *,
        retryable: bool = True,  # always: accepted so that it is built like a ProviderError
        provider: str = "",
        message: Model | None = None,
        failures: Sequence[str] = (),
    ) -> None:
        super().__init__(
            description, retryable=True, provider=provider, message=message, failures=failures
        )

    def __str__(self) -> str:
        name = f"{self.provider}: " if self.provider else ""
        return f"{name}{self.description}"


class RecipientSuppressedError(CommunicationError):
    """The address is on the suppression list (it bounced or complained) or opted out of this
    message type: nothing was sent. ``message`` is the saved ``suppressed`` Message (the audit
    log keeps the attempt), ``reason`` says why.

    Permanent: sending again cannot succeed, so the outbox records the event as dead at once
    instead of retrying it.
    """

    permanent = True

    def __init__(self, reason: str, *, message: Model | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


class RecipientOptedOutError(RecipientSuppressedError):
    """The recipient opted out of this message type on this channel (a RecipientSuppressedError)."""


class InvalidUnsubscribeToken(CommunicationError, ValueError):
    """An unsubscribe token that was not made by this site (cut short, altered, made under a
    key no longer in ``SECRET_KEY`` / ``SECRET_KEY_FALLBACKS``) or names nothing one can opt
    out of."""


class ExpiredUnsubscribeToken(InvalidUnsubscribeToken):
    """A genuine unsubscribe token older than ``COMMUNICATION["UNSUBSCRIBE_TOKEN_DAYS"]``."""
