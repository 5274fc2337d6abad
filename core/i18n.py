"""The bots' own words in the person's language: sentences are lazy values, rendered with a locale at the edge.

A `Sentence` is a str holding its English text, so code, logs and the HTTP API that know nothing of
languages keep working unchanged, and it also remembers its msgid and values. `localize(text, locale)`
renders it from that language's gettext catalog (core/locale/<lang>/LC_MESSAGES/chatscribe.po); values that
are sentences themselves (a setting's name, "on", the reason for being busy) are rendered in the same
language. Anything that is not a Sentence passes unchanged: a transcript is never translated.

Why lazy values and not a current-locale variable: an error is made where it happens (decoding on a runner
thread, a worker process behind Redis), journaled, and shown after a restart; the sentence keeps what it
needs to be said in any language (`to_json` / `from_json` carry it through the codecs), and the edge that
shows it knows whose language to use (MediaRequest.replies, chosen by the platform's adapter).

Catalogs are read with Babel and compiled in memory on first use (no .mo file to build or go stale).
Extraction: `Sentence("...")` and `Plural("...", "...", n)` calls in core, adapters and bots (KEYWORDS).
"""

from __future__ import annotations

import gettext
import io
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .languages import code_of_locale

log = logging.getLogger(__name__)

DOMAIN = "chatscribe"
LOCALE_DIR = Path(__file__).with_name("locale")
SOURCE_LANGUAGE = "en"
REPLY_LANGUAGES = ("en", "de", "es", "fr", "it", "pt", "ru", "uk")
"""The languages the bots answer in (a catalog each; English is the msgids themselves)."""
KEYWORDS: Mapping[str, Any] = {"Sentence": None, "Plural": (1, 2)}
"""Babel's extraction keywords for the calls that mark a sentence (tests/core/test_catalogs.py, README)."""


class Sentence(str):
    """A sentence people read: its English text as the str, plus what renders it in another language."""

    msgid: str
    plural: str | None
    n: int | None
    params: Mapping[str, object]

    def __new__(cls, msgid: str, /, **params: object) -> Sentence:
        return cls._make(msgid, None, None, params)

    @classmethod
    def _make(cls, msgid: str, plural: str | None, n: int | None, params: Mapping[str, object]) -> Sentence:
        english = plural if plural is not None and n != 1 else msgid
        self = str.__new__(cls, _fill(english, params, None))
        self.msgid, self.plural, self.n, self.params = msgid, plural, n, dict(params)
        return self

    def localized(self, locale: str | None) -> str:
        language = reply_language(locale)
        if language in (None, SOURCE_LANGUAGE):
            return _fill(self._english(), self.params, language)
        translations = _catalog(language)
        template = (translations.ngettext(self.msgid, self.plural, self.n or 0) if self.plural is not None
                    else translations.gettext(self.msgid))
        try:
            return _fill(template, self.params, language)
        except (KeyError, IndexError, ValueError):  # a broken translation: English rather than nothing
            log.warning("the %s translation of %r does not fit its values", language, self.msgid)
            return _fill(self._english(), self.params, language)

    def _english(self) -> str:
        return self.plural if self.plural is not None and self.n != 1 else self.msgid

    def __reduce__(self) -> tuple[Any, ...]:
        return from_json, (to_json(self),)


def Plural(singular: str, plural: str, n: int, /, **params: object) -> Sentence:  # noqa: N802 (a marker, like Sentence)
    """A sentence with a number in it ("{n} minute" / "{n} minutes"); `{n}` is filled in with `n`."""
    return Sentence._make(singular, plural, n, {"n": n, **params})


class _Joined(Sentence):
    """Sentences (or plain text) shown one after the other, each in the reader's language."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: Iterable[str], separator: str = " ") -> _Joined:
        kept = tuple(p for p in parts if p)
        self = str.__new__(cls, separator.join(kept))
        self.msgid, self.plural, self.n, self.params = "", None, None, {}
        self.parts, self.separator = kept, separator
        return self

    def localized(self, locale: str | None) -> str:
        return self.separator.join(localize(part, locale) for part in self.parts)


class _LanguageName(Sentence):
    """A language's name and code, in the reader's language ("German (de)", "Deutsch (de)")."""

    code: str

    def __new__(cls, code: str, english: str) -> _LanguageName:
        self = str.__new__(cls, english)
        self.msgid, self.plural, self.n, self.params, self.code = "", None, None, {}, code
        return self

    def localized(self, locale: str | None) -> str:
        language = reply_language(locale)
        if language in (None, SOURCE_LANGUAGE):
            return str.__str__(self)
        from babel import Locale  # only where a reply is shown in another language

        name = Locale.parse(language).languages.get(self.code)
        return f"{name} ({self.code})" if name else str.__str__(self)  # CLDR's case: "Deutsch", "allemand"


def joined(parts: Iterable[str], separator: str = " ") -> Sentence:
    """Several sentences as one ("Language set to German." + " " + a hint), still rendered per reader."""
    return _Joined(parts, separator)


def language_name(code: str, english: str) -> Sentence:
    """`english` is how it reads in English ("German (de)"); other languages take their CLDR name."""
    return _LanguageName(code, english)


def localize(text: str, locale: str | None) -> str:
    """`text` in `locale` when it is a Sentence; anything else (a transcript, a file name) as it is."""
    if isinstance(text, Sentence):
        return text.localized(locale)
    return text


def reply_language(locale: str | None) -> str | None:
    """The reply language for a platform's locale ("de", "pt-BR", "en_US", "uk"); None when not offered."""
    language = code_of_locale(locale)
    return language if language in REPLY_LANGUAGES else None


# -- carrying a sentence through the journal and Redis ---------------------------------------------------


def to_json(sentence: str) -> dict[str, Any] | None:
    """What `from_json` needs to render it again in any language; None for plain text."""
    if isinstance(sentence, _Joined):
        return {"joined": [to_json(p) or p for p in sentence.parts], "separator": sentence.separator}
    if isinstance(sentence, _LanguageName):
        return {"language": sentence.code, "english": str.__str__(sentence)}
    if isinstance(sentence, Sentence):
        params = {k: (to_json(v) or str(v)) if isinstance(v, str) else v for k, v in sentence.params.items()}
        return {"msgid": sentence.msgid, "plural": sentence.plural, "n": sentence.n, "params": params}
    return None


def from_json(data: Mapping[str, Any] | str) -> str:
    if isinstance(data, str):
        return data
    if "joined" in data:
        return _Joined([from_json(p) for p in data["joined"]], data.get("separator", " "))
    if "language" in data:
        return _LanguageName(data["language"], data["english"])
    params = {k: from_json(v) if isinstance(v, dict) else v for k, v in (data.get("params") or {}).items()}
    return Sentence._make(data["msgid"], data.get("plural"), data.get("n"), params)


# -- catalogs -----------------------------------------------------------------------------------------

_catalogs: dict[str, gettext.NullTranslations] = {}
_lock = threading.Lock()


def _catalog(language: str) -> gettext.NullTranslations:
    with _lock:  # rendered from the loop and from runner threads alike
        found = _catalogs.get(language)
        if found is None:
            found = _catalogs[language] = _load(language)
        return found


def _load(language: str) -> gettext.NullTranslations:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: they fall back to English
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _fill(template: str, params: Mapping[str, object], locale: str | None) -> str:
    if not params:
        return template
    values = {k: localize(v, locale) if isinstance(v, str) else v for k, v in params.items()}
    return template.format_map(values)
