"""What a person can ask of one transcription."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import UnknownLanguage

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    """Its cache digest is core/keys.py options_digest(); its stored form core/codecs.py encode_options()."""

    language: str | None = None
    """A language code, or None to detect it."""
    task: Task = "transcribe"
    """"translate" gives English whatever was spoken."""
    vocabulary: str | None = None
    """Names and terms to expect; passed to Whisper as the initial prompt."""
    word_timestamps: bool = False
    expected_languages: tuple[str, ...] = ()
    """Detection picks among these (short clips are often mistaken for a neighbouring language)."""
    temperature: float | None = None
    """None = Whisper's fallback schedule (0.0 upwards when decoding fails its checks)."""

    def __post_init__(self) -> None:
        # Edges pass on what a person typed: "EN" works, a code Whisper does not know is refused here
        # with a sentence for that person, instead of failing inside the model run.
        object.__setattr__(self, "language", checked_language_code(self.language) if self.language else None)
        object.__setattr__(self, "expected_languages", tuple(checked_language_code(c) for c in self.expected_languages))

    def batch_key(self) -> tuple[object, ...]:
        """Requests with equal batch keys may share an engine call."""
        return (self.language, self.task, self.vocabulary, self.word_timestamps, self.expected_languages,
                self.temperature)


def checked_language_code(value: str) -> str:
    """Whisper's code for a code as typed ("en", " DE "); raises UnknownLanguage for anything else.

    Strict, for options: names ("German") are read at the edges by core/languages.py code_or_name.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    code = value.strip().lower()
    if code not in _LANGUAGE_CODES:
        raise UnknownLanguage(value)
    return code
