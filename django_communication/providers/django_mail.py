"""Email through django.core.mail and settings.EMAIL_BACKEND (SMTP, anymail, locmem...)."""

from __future__ import annotations

import copy
import smtplib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from django.core.mail import EmailMultiAlternatives, get_connection

from ..exceptions import ProviderError
from .base import EmailProvider
from .mime import build_email

if TYPE_CHECKING:
    from ..models import Message


class PreparedEmail(EmailMultiAlternatives):
    """An email that keeps its MIME form: built once by prepare(), reused by the backend's own
    message() call (SMTP, locmem...) when it asks for the same form. Copies share it."""

    _mime: tuple[dict, object] | None = None
    #: The keyword arguments of the last message() call (None: never called).
    requested: dict | None = None

    def message(self, **kwargs):
        self.requested = kwargs
        if self._mime is None or self._mime[0] != kwargs:
            self._mime = (kwargs, super().message(**kwargs))
        return self._mime[1]

    def __deepcopy__(self, memo: dict) -> PreparedEmail:
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name == "_mime" else copy.deepcopy(value, memo)
        return clone


class DjangoMailProvider(EmailProvider):
    name = "django"

    def __init__(self, config) -> None:
        super().__init__(config)
        self._local = threading.local()
        # How the backend asked for the last email's MIME form; None: it did not (anymail and
        # other API backends read the fields), so prepare() does not build one.
        self._mime_kwargs: dict | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        """One backend connection (one SMTP session) for a whole batch."""
        connection = get_connection()
        try:
            connection.open()
        except (smtplib.SMTPException, OSError):
            connection = None  # each send() reports the error for its own message
        self._local.connection = connection
        try:
            yield
        finally:
            self._local.connection = None
            if connection is not None:
                with suppress(smtplib.SMTPException, OSError):
                    connection.close()

    def prepare(self, message: Message) -> None:
        email = self.build(message)
        if self._mime_kwargs is not None:
            email.message(**self._mime_kwargs)
            email.requested = None  # built here, not asked for by the backend
        self._local.prepared = (message, email)

    def build(self, message: Message) -> PreparedEmail:
        email = build_email(
            message,
            self.config.email_reply_to,
            email_class=PreparedEmail,
            connection=getattr(self._local, "connection", None) or get_connection(),
        )
        assert isinstance(email, PreparedEmail)
        return email

    def send(self, message: Message) -> str:
        prepared = getattr(self._local, "prepared", None)
        self._local.prepared = None
        email = prepared[1] if prepared and prepared[0] is message else self.build(message)
        try:
            email.send()
            self._mime_kwargs = email.requested
        except smtplib.SMTPRecipientsRefused as exc:
            # {address: (code, reply)}: a 4xx refusal (greylisting, mailbox busy) is temporary.
            codes = [code for code, _ in exc.recipients.values()]
            raise ProviderError(
                f"recipient refused: {exc}",
                retryable=bool(codes) and all(code < 500 for code in codes),
                provider=self.name,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            retryable = exc.smtp_code < 500
            raise ProviderError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=retryable, provider=self.name
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderError(
                f"{type(exc).__name__}: {exc}", retryable=True, provider=self.name
            ) from exc
        return email.extra_headers["Message-ID"]
