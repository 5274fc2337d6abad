"""A conversation's settings: the language, translation, vocabulary, format, timestamps and automatic
transcription a chat, channel or server chose, with the same meaning on every platform.

Stored as short strings in core/preferences.py under the keys of KEYS; parsed here from what a person
typed, so every platform refuses the same values with the same sentence (core/sentences.py); turned
into the TranscribeOptions of the next file. A platform only maps its command syntax onto
`parse_setting` and renders the sentences. Where a platform layers settings (a Discord server, then
one of its channels), later layers override earlier ones key by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from . import sentences
from .errors import LanguageNotOffered, SettingRefused, UnknownLanguage
from .i18n import REPLY_LANGUAGES, reply_language
from .languages import code_or_name
from .options import SPEAKERS_MODES, SpeakersMode, TranscribeOptions

Format = Literal["text", "srt", "vtt"]
FORMATS: tuple[Format, ...] = ("text", "srt", "vtt")
KEYS = ("language", "translate", "vocab", "format", "timestamps", "auto", "speakers", "replies")
"""The stored keys, in the order `settings` shows them."""
SWITCHES = frozenset({"translate", "timestamps", "auto"})
VOCABULARY_LIMIT = 500
"""Characters: Whisper's prompt is at most 224 tokens; longer lists only crowd out what was said."""
_ON, _OFF = "on", "off"


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    language: str | None = None
    """A language code; None = detect (among CHATSCRIBE_LANGUAGES when set)."""
    translate: bool = False
    vocabulary: str | None = None
    """Names and terms to expect, passed to Whisper as its prompt."""
    format: Format = "text"
    """The file type of transcripts sent as a file: text (.txt), srt or vtt."""
    timestamps: bool = False
    speakers: SpeakersMode = "off"
    """Who says what: on, off, or auto (recordings of at least CHATSCRIBE_SPEAKERS_AUTO_MIN_S)."""
    auto: bool | None = None
    """Transcribe recordings shared here without being asked; None = the platform's default."""
    replies: str | None = None
    """The language of the bot's own words here (core/i18n.py REPLY_LANGUAGES); None = each person's app
    language where the platform tells it, else English. Transcripts are never translated by it."""

    @classmethod
    def from_stored(cls, *layers: Mapping[str, str]) -> ConversationSettings:
        """Stored values, later layers overriding earlier ones; values no longer understood are ignored."""
        stored: dict[str, str] = {}
        for layer in layers:
            stored.update(layer)
        fmt = _FORMAT_WORDS.get(stored.get("format", ""), "text")
        auto = stored.get("auto")
        return cls(
            language=code_or_name(stored["language"]) if stored.get("language") else None,
            translate=stored.get("translate") == _ON,
            vocabulary=stored.get("vocab") or None,
            format=fmt,
            timestamps=stored.get("timestamps") == _ON,
            speakers=_speakers_mode(stored.get("speakers")),
            auto=None if auto not in (_ON, _OFF) else auto == _ON,
            replies=reply_language(stored.get("replies")),
        )

    @property
    def file_extension(self) -> str:
        return "txt" if self.format == "text" else self.format

    def auto_or(self, default: bool) -> bool:
        return default if self.auto is None else self.auto

    def options(self, offered: tuple[str, ...] = (), *, language: str | None = None,
                translate: bool | None = None) -> TranscribeOptions:
        """The options of the next file here. `offered`: CHATSCRIBE_LANGUAGES (empty = any).

        `language` and `translate` are a one-off override typed with a command (`!transcribe de translate`),
        `language` already a code from `resolve_language`. A stored language the operator no longer
        offers is left out: detection among the offered ones is what the operator asked for.
        """
        chosen = language or self.language
        if chosen is not None and offered and chosen not in offered:
            chosen = None
        translating = self.translate if translate is None else translate
        return TranscribeOptions(
            language=chosen, task="translate" if translating else "transcribe", vocabulary=self.vocabulary,
            expected_languages=() if chosen else offered, speakers=self.speakers,
        )

    def lines(self, *, show_auto: bool = True) -> list[str]:
        return sentences.settings_lines(language=self.language, translate=self.translate, fmt=self.format,
                                        speakers=self.speakers,
                                        timestamps=self.timestamps, vocabulary=self.vocabulary,
                                        auto=self.auto_or(False) if show_auto else None, replies=self.replies)

    def replies_in(self, person: str | None) -> str | None:
        """The reply language for a person whose app says `person` (a platform locale, e.g. "pt-BR"):
        this conversation's choice, else theirs when the bots speak it; None = English."""
        return self.replies or reply_language(person)


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One setting as a person changed it: `value` is what is stored, None = back to the default."""

    key: str
    value: str | None

    @property
    def confirmation(self) -> str:
        if self.key == "language":
            return sentences.language_set(self.value)
        if self.key == "vocab":
            return sentences.vocabulary_set(self.value)
        if self.key == "replies":
            return sentences.replies_set(self.value)
        if self.key == "speakers":
            return sentences.speakers_set(self.value or "off")
        if self.key == "format":
            return sentences.format_set(self.value or "text")
        return sentences.switched(self.key, self.value == _ON)


def parse_setting(key: str, typed: str, *, offered: tuple[str, ...] = ()) -> SettingChange:
    """What a person typed for a setting -> the change to store; SettingRefused (a sentence) otherwise.

    `key` is one of KEYS ("vocabulary" too); `offered` is CHATSCRIBE_LANGUAGES (empty = any).
    """
    key = {"vocabulary": "vocab"}.get(key.lower(), key.lower())
    value = typed.strip()
    if key == "language":
        if not value:
            raise SettingRefused(sentences.LANGUAGE_CHOICES)
        return SettingChange("language", resolve_language(value, offered))
    if key in SWITCHES:
        switch = value.lower()
        if switch not in (_ON, _OFF):
            raise SettingRefused(sentences.on_or_off(key))
        return SettingChange(key, switch)
    if key == "format":
        fmt = _FORMAT_WORDS.get(value.lower())
        if fmt is None:
            raise SettingRefused(sentences.FORMAT_CHOICES)
        return SettingChange("format", fmt)
    if key == "speakers":
        mode = value.lower()
        if mode not in SPEAKERS_MODES:
            raise SettingRefused(sentences.SPEAKER_MODE_CHOICES)
        return SettingChange("speakers", mode)
    if key == "vocab":
        if len(value) > VOCABULARY_LIMIT:
            raise SettingRefused(sentences.vocabulary_too_long(VOCABULARY_LIMIT))
        return SettingChange("vocab", value or None)
    if key == "replies":
        return SettingChange("replies", _reply_language(value))
    raise SettingRefused(sentences.unknown_setting(key, KEYS))


def _reply_language(typed: str) -> str | None:
    """"de", "German", "pt-BR" -> a reply language; "auto" (or nothing) -> None; else refused."""
    if typed.lower() in ("", "auto"):
        return None
    code = reply_language(code_or_name(typed) or typed)
    if code is None:
        raise SettingRefused(sentences.replies_choices(REPLY_LANGUAGES))
    return code


def resolve_language(typed: str | None, offered: Iterable[str] = ()) -> str | None:
    """A language as typed ("auto", "de", "German") -> its code, None for auto-detect.

    Raises UnknownLanguage for no language Whisper knows, LanguageNotOffered for one outside
    CHATSCRIBE_LANGUAGES: the same refusal on every platform, the HTTP API and the CLI.
    """
    if typed is None or typed.strip().lower() in ("", "auto"):
        return None
    code = code_or_name(typed)
    if code is None:
        raise UnknownLanguage(typed)
    allowed = tuple(offered)
    if allowed and code not in allowed:
        raise LanguageNotOffered(typed, allowed)
    return code


def _speakers_mode(stored: str | None) -> SpeakersMode:
    return next((mode for mode in SPEAKERS_MODES if mode == stored), "off")


_FORMAT_WORDS: dict[str, Format] = {"text": "text", "txt": "text", "srt": "srt", "vtt": "vtt"}
