"""The result of a transcription and its renderers (txt, srt, vtt, json)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .i18n import Plural, Sentence, joined
from .sentences import DOUBTFUL_MARK

OutputFormat = Literal["txt", "srt", "vtt", "json"]
FORMATS: tuple[OutputFormat, ...] = ("txt", "srt", "vtt", "json")

# Segment quality flags (see quality.py).
LOW_CONFIDENCE = "low_confidence"
HALLUCINATION = "hallucination"


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0
    words: tuple[Word, ...] = ()
    flags: frozenset[str] = frozenset()
    tokens: tuple[int, ...] = ()
    """Whisper's token ids for the text (empty where the decoder's tokens are not known, e.g. a batched note)."""
    temperature: float | None = None
    """The sampling temperature the text was decoded at (after any fallback); None where not known."""
    speaker: str | None = None
    """Who speaks (core/speakers): "A", "B"… for voices, the channel's name ("Left", "Channel 3") for
    channels, a known speaker's name when matched; None where speakers were not asked for or not told apart."""


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch where the voice-activity detector hears speech and the transcript has no words, even after
    that stretch was transcribed again on its own (core/coverage.py)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Transcript:
    segments: tuple[Segment, ...]
    language: str | None
    language_probability: float
    duration_s: float
    model: str
    task: str = "transcribe"
    truncated: bool = False
    """The media ended early (a cut download): the text is what was there."""
    from_cache: bool = False
    dropped: tuple[Segment, ...] = field(default=(), compare=False)
    """Segments removed by the quality pass (likely hallucinations), kept for diagnostics."""
    gaps: tuple[Gap, ...] = ()
    """Speech that could not be transcribed, in time order: every answer says so (gap_note)."""
    english_only: bool = False
    """Made by an English-only model (`.en`): a gap may be speech in another language."""
    speakers: tuple[str, ...] = ()
    """The speaker labels found, in order of first turn; empty where not asked for or one speaker."""
    speaker_note: str | None = None
    """The sentence saying speakers could not be told apart (the speaker step failed): the text is still whole."""
    language_reason: str = "detected"
    """Why it is in `language` (core/language_choice.py Reason): "requested", "detected", "recent_notes",
    "sender_language", "operator_languages" or "english_only"."""

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def has_speech(self) -> bool:
        return bool(self.text)

    @property
    def flagged(self) -> bool:
        return any(s.flags for s in self.segments)


MULTILINGUAL_HINT = "a multilingual model (e.g. CHATSCRIBE_MODEL=base)"


def gap_note(transcript: Transcript) -> str | None:
    """The sentence every answer carries when speech could not be transcribed; None when nothing is missing."""
    if not transcript.gaps:
        return None
    spans = ", ".join(f"{_clock(g.start)}–{_clock(g.end)}" for g in transcript.gaps)
    note = Plural("A part of the recording could not be transcribed ({spans}): speech is heard there, but no "
                  "words came out.", "Some parts of the recording could not be transcribed ({spans}): speech is "
                  "heard there, but no words came out.", len(transcript.gaps), spans=spans)
    if transcript.english_only:
        return joined([note, Sentence("The model is English-only, so it may be another language; {model} can "
                                      "transcribe it.", model=MULTILINGUAL_HINT)])
    return note


def gap_cue(transcript: Transcript) -> str:
    """What a subtitle shows over a gap."""
    cue = "speech here could not be transcribed"
    if transcript.english_only:
        cue += f"; it may be another language, which {MULTILINGUAL_HINT} can transcribe"
    return cue


def render(transcript: Transcript, fmt: str, *, timestamps: bool = False, marked: bool = False) -> str:
    """Render in one of FORMATS; `timestamps` adds [mm:ss] marks to the plain text; `marked` puts
    DOUBTFUL_MARK before each doubtful (low-confidence) passage of txt, srt and vtt, for files sent to people."""
    if fmt == "txt":
        return render_txt(transcript, timestamps=timestamps, marked=marked)
    if fmt == "srt":
        return render_srt(transcript, marked=marked)
    if fmt == "vtt":
        return render_vtt(transcript, marked=marked)
    if fmt == "json":
        return render_json(transcript)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def render_txt(transcript: Transcript, *, timestamps: bool = False, marked: bool = False,
               markup: Markup | None = None) -> str:
    """The plain text; with several speakers (`labelled`), each turn starts with its label, one turn a
    paragraph. `markup` is a platform's: its escaping of the words and its way of showing a label."""
    if labelled(transcript):
        return _turns_txt(transcript, timestamps, marked, markup or PLAIN)
    escape = markup.escape if markup else _same
    if not timestamps and not marked:
        return escape(transcript.text)
    spoken = [(s.start, _passage(s, marked)) for s in _spoken(transcript)]
    if not timestamps:
        return escape(" ".join(text for _, text in spoken))
    return escape("\n".join(f"[{_clock(start)}] {text}" for start, text in spoken))


def render_srt(transcript: Transcript, *, marked: bool = False) -> str:
    blocks = []
    for index, (start, end, text, speaker) in enumerate(_cues(transcript, marked), start=1):
        said = f"[{speaker}] {text}" if speaker else text
        blocks.append(f"{index}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{said}\n")
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, *, marked: bool = False) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text, speaker in _cues(transcript, marked):
        # WebVTT's voice span: players show (or style) who speaks; the name is escaped as cue text is.
        said = f"<v {_vtt_escape(speaker)}>{_vtt_escape(text)}" if speaker else _vtt_escape(text)
        blocks.append(f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{said}\n")
    return "\n".join(blocks)


def _cues(transcript: Transcript, marked: bool = False) -> list[tuple[float, float, str, str | None]]:
    """Spoken segments (with who speaks, when labelled) and, where speech could not be transcribed, a
    bracketed cue saying so, in time order."""
    who = _labeller(transcript)
    cues: list[tuple[float, float, str, str | None]] = [
        (s.start, s.end, _passage(s, marked), who(s)) for s in _spoken(transcript)]
    if transcript.gaps:
        marker = f"[{gap_cue(transcript)}]"
        cues += [(g.start, g.end, marker, None) for g in transcript.gaps]
    return sorted(cues, key=lambda cue: cue[0])


# -- speakers -----------------------------------------------------------------------------------------

_VOICE_LABEL = re.compile(r"[A-Z]")
"""How core/speakers names a voice it told apart (A, B, …, at most MAX_SPEAKERS = 20 of them); channel and
known names are shown as they are."""


def speaker_name(label: str) -> str:
    """What a person reads for a speaker label: "Speaker A" for a voice, the channel's or known name as is."""
    return f"Speaker {label}" if _VOICE_LABEL.fullmatch(label) else label


def labelled(transcript: Transcript) -> bool:
    """Several speakers were told apart: the answer shows who says what. One (or none) reads as before."""
    return len(transcript.speakers) > 1


@dataclass(frozen=True, slots=True)
class Turn:
    """Consecutive spoken segments of one speaker."""

    speaker: str
    """Its label as core/speakers gave it ("A", "Left", a known name); speaker_name() is what people read."""
    segments: tuple[Segment, ...]

    @property
    def start(self) -> float:
        return self.segments[0].start


def turns(transcript: Transcript) -> list[Turn]:
    """The spoken segments in turns; a segment without a label stays in the turn before it."""
    found: list[Turn] = []
    for segment in _spoken(transcript):
        speaker = segment.speaker or (found[-1].speaker if found else next(iter(transcript.speakers), ""))
        if found and found[-1].speaker == speaker:
            found[-1] = Turn(speaker, (*found[-1].segments, segment))
        else:
            found.append(Turn(speaker, (segment,)))
    return found


@dataclass(frozen=True, slots=True)
class Markup:
    """How a platform shows text: `escape` for the words, `label` for a turn's speaker name (its colon too)."""

    escape: Callable[[str], str]
    label: Callable[[str], str]


def _same(text: str) -> str:
    return text


PLAIN = Markup(escape=_same, label=lambda name: f"{name}:")


def _turns_txt(transcript: Transcript, timestamps: bool, marked: bool, markup: Markup) -> str:
    paragraphs = []
    for turn in turns(transcript):
        label = markup.label(speaker_name(turn.speaker))
        passages = [(s.start, markup.escape(_passage(s, marked))) for s in turn.segments]
        if timestamps:
            lines = [f"[{_clock(start)}] {text}" for start, text in passages]
            lines[0] = f"[{_clock(turn.start)}] {label} {passages[0][1]}"
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(f"{label} {' '.join(text for _, text in passages)}")
    return "\n\n".join(paragraphs)


def speakers_of(transcript: Transcript) -> dict[int, str]:
    """Each spoken segment's speaker label (by identity), as its turn has it; empty when not labelled."""
    if not labelled(transcript):
        return {}
    return {id(s): t.speaker for t in turns(transcript) for s in t.segments}


def _labeller(transcript: Transcript) -> Callable[[Segment], str | None]:
    """The speaker name people read for each spoken segment when labelled; None for every one otherwise."""
    speaker_of = speakers_of(transcript)
    return lambda segment: speaker_name(speaker_of[id(segment)]) if id(segment) in speaker_of else None


def _vtt_escape(text: str) -> str:
    # WebVTT cue text is markup: "<3" would open a tag and hide the rest of the cue in a player.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_json(transcript: Transcript) -> str:
    return json.dumps(to_dict(transcript), ensure_ascii=False, indent=2)


def to_dict(transcript: Transcript) -> dict[str, Any]:
    """JSON's shape; segments carry `speaker` (the label as core/speakers gave it) when labelled."""
    labels = labelled(transcript)
    speaker_of = speakers_of(transcript)

    def who(segment: Segment) -> str | None:
        return speaker_of.get(id(segment), segment.speaker)

    return {
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": round(transcript.language_probability, 4),
        "duration": round(transcript.duration_s, 3),
        "model": transcript.model,
        "task": transcript.task,
        "language_reason": transcript.language_reason,
        "has_speech": transcript.has_speech,
        "truncated": transcript.truncated,
        "gaps": [{"start": round(g.start, 3), "end": round(g.end, 3)} for g in transcript.gaps],
        "notice": gap_note(transcript),
        **({"speakers": list(transcript.speakers)} if labelled(transcript) else {}),
        **({"speaker_note": transcript.speaker_note} if transcript.speaker_note else {}),
        "segments": [
            {
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text.strip(),
                "avg_logprob": round(s.avg_logprob, 4),
                "no_speech_prob": round(s.no_speech_prob, 4),
                "compression_ratio": round(s.compression_ratio, 4),
                "flags": sorted(s.flags),
                **({"speaker": who(s)} if labels else {}),
                **(
                    {
                        "words": [
                            {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.text,
                             "probability": round(w.probability, 4)}
                            for w in s.words
                        ]
                    }
                    if s.words
                    else {}
                ),
            }
            for s in transcript.segments
        ],
    }


def is_doubtful(segment: Segment) -> bool:
    """Kept by the quality pass but flagged (low confidence): worth checking against the recording."""
    return LOW_CONFIDENCE in segment.flags


def _passage(segment: Segment, marked: bool) -> str:
    text = segment.text.strip()
    return f"{DOUBTFUL_MARK} {text}" if marked and is_doubtful(segment) else text


def _spoken(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text.strip()]


def _stamp(seconds: float, decimal_mark: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
