"""The language of a message, in order: the one asked for (``send(language=...)``, an outbox
event's or rule's), the recipient's (``COMMUNICATION["LANGUAGE_RESOLVER"]``, by default the
``language`` attribute of the ``to`` object), then ``settings.LANGUAGE_CODE``.

Codes are those of ``settings.LANGUAGES``; a code that is not listed falls back to its generic
language (``pt-br`` → ``pt``). Which variant of a template renders it is rendering.py's concern.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import to_language

from .conf import comm_settings
from .exceptions import InvalidArgumentError

_listed: tuple[object, frozenset[str]] = (None, frozenset())
_UNSET = object()


def listed_codes() -> frozenset[str]:
    """The codes of ``settings.LANGUAGES``, rebuilt when the setting is replaced."""
    global _listed
    languages = settings.LANGUAGES
    if _listed[0] is not languages:
        _listed = (languages, frozenset(code.lower() for code, _ in languages))
    return _listed[1]


def fallbacks(code: str) -> list[str]:
    """``code`` and then its generic language: ``pt-br`` → ``["pt-br", "pt"]``."""
    generic = code.split("-")[0]
    return [code] if generic == code else [code, generic]


def supported(code: Any) -> str | None:
    """The listed code for ``code`` (``pt_BR``, ``pt-BR`` → ``pt-br``, or ``pt`` when only that
    is listed), or None."""
    if not isinstance(code, str) or not code.strip():
        return None
    codes = listed_codes()
    for candidate in fallbacks(to_language(code.strip())):
        if candidate in codes:
            return candidate
    return None


def message_language(language: str | None, to: Any) -> str:
    """The language a message is rendered in. An explicit ``language`` must be listed in
    ``settings.LANGUAGES`` (InvalidArgumentError otherwise); a recipient's language that is not
    listed is passed over."""
    if language:
        found = supported(language)
        if found is None:
            raise InvalidArgumentError(
                f"language={language!r} is not in settings.LANGUAGES: use one of its codes, "
                f"e.g. {sorted(listed_codes())[:3]}."
            )
        return found
    if to is not None and not isinstance(to, str):
        found = supported(recipient_language(to))
        if found is not None:
            return found
    return default_language()


_default: tuple[object, object, str] = (None, None, "")


def default_language() -> str:
    """``settings.LANGUAGE_CODE`` as a listed code (``en-us`` → ``en`` when only ``en`` is
    listed), remembered while both settings stay the same objects."""
    global _default
    code, languages = settings.LANGUAGE_CODE, settings.LANGUAGES
    if _default[0] is not code or _default[1] is not languages:
        normal = to_language(code)
        _default = (code, languages, supported(normal) or normal)
    return _default[2]


def recipient_language(to: Any) -> str | None:
    resolver = comm_settings.language_resolver
    if resolver is not None:
        return resolver(to)
    return getattr(to, "language", None)


class ActiveLanguages:
    """``translation.activate()`` for a batch of renderings: it switches only when the language
    changes from one message to the next and restores the caller's language once, at the end
    (``translation.override`` per message would cost a batch of 500 messages 500 switches)."""

    def __enter__(self) -> ActiveLanguages:
        self.current: str | None = None
        self._previous: object = _UNSET
        return self

    def use(self, language: str) -> None:
        if language == self.current:
            return
        if self._previous is _UNSET:
            self._previous = translation.get_language()
        translation.activate(language)
        self.current = language

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is _UNSET:
            return
        if self._previous is None:
            translation.deactivate_all()
        else:
            translation.activate(self._previous)
