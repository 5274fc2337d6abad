"""What a person can ask of one transcription."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import sentences
from .errors import SpeakerOptionsRefused, UnknownLanguage

Task = Literal["transcribe", "translate"]
SpeakersMode = Literal["off", "on", "auto"]
"""Speaker labels: never, always, or only for recordings of at least CHATSCRIBE_SPEAKERS_AUTO_MIN_S."""
SPEAKERS_MODES: tuple[SpeakersMode, ...] = ("off", "on", "auto")


@dataclass(frozen=True, slots=True)
class KnownSpeaker:
    """A voice to name: a 2–10 s reference clip as the client sent it (any accepted format), decoded by
    core/media.py when the speaker step uses it. Its digest is the clip's sha256, not its bytes."""

    name: str
    audio: bytes = field(repr=False)


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
    speakers: SpeakersMode = "off"
    """Label who speaks (core/speakers): by channel where channels differ, else by voice."""
    min_speakers: int | None = None
    """At least this many voices (None: estimated)."""
    max_speakers: int | None = None
    """At most this many voices (None: estimated)."""
    known_speakers: tuple[KnownSpeaker, ...] = ()
    """Voices to name: the cluster matching one is labelled with its name instead of a letter."""
    language_hints: tuple[tuple[str, str], ...] = ()
    """(source, code) pairs the conversation suggests, most trusted first ("recent_notes", "sender_language"):
    they decide an unconfident detection on a short clip (core/language_choice.py). Context, not a request:
    left out of the cache digest, so a repeat is answered from the cache whatever the chat spoke since."""

    def __post_init__(self) -> None:
        # Edges pass on what a person typed: "EN" works, a code Whisper does not know is refused here
        # with a sentence for that person, instead of failing inside the model run.
        object.__setattr__(self, "language", checked_language_code(self.language) if self.language else None)
        object.__setattr__(self, "expected_languages", tuple(checked_language_code(c) for c in self.expected_languages))
        _check_speakers(self)
        # Stored options come back as JSON lists; only languages Whisper knows can be chosen.
        object.__setattr__(self, "language_hints", tuple(
            (str(source), str(code)) for source, code in self.language_hints if str(code) in _whisper_codes()))

    def batch_key(self) -> tuple[object, ...]:
        """Requests with equal batch keys may share an engine call."""
        return (self.language, self.task, self.vocabulary, self.word_timestamps, self.expected_languages,
                self.temperature, self.language_hints)


MAX_SPEAKERS = 20
"""The most voices a request may ask for (min/max_speakers)."""
MAX_KNOWN_SPEAKERS = 8


def _check_speakers(options: TranscribeOptions) -> None:
    if options.speakers not in SPEAKERS_MODES:
        raise SpeakerOptionsRefused(sentences.SPEAKER_MODE_CHOICES)
    least, most = options.min_speakers, options.max_speakers
    if any(n is not None and not 1 <= n <= MAX_SPEAKERS for n in (least, most)) or (
            least is not None and most is not None and least > most):
        raise SpeakerOptionsRefused(sentences.speaker_counts_refused(least, most, MAX_SPEAKERS))
    names = [k.name.strip() for k in options.known_speakers]
    if len(names) > MAX_KNOWN_SPEAKERS or not all(names) or len(set(names)) != len(names) or not all(
            k.audio for k in options.known_speakers):
        raise SpeakerOptionsRefused(sentences.known_speakers_refused(MAX_KNOWN_SPEAKERS))


def checked_language_code(value: str) -> str:
    """Whisper's code for a code as typed ("en", " DE "); raises UnknownLanguage for anything else.

    Strict, for options: names ("German") are read at the edges by core/languages.py code_or_name.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    code = value.strip().lower()
    if code not in _LANGUAGE_CODES:
        raise UnknownLanguage(value)
    return code


def _whisper_codes() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)
