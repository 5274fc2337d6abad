"""Laying short notes out in shared 30 s windows, and taking each note's words back out.

Notes sit in a window one after another with silence between them; after one decoding, every word goes
to the note under its middle, its times shifted back to the note's own clock (and from the VAD-cut
speech back to the recording, as faster-whisper's transcribe() does).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..media import SAMPLE_RATE
from ..transcript import Segment, Word
from .decoding_steps import Generated

PACK_LIMIT_S = 29.0
"""Leave the window's last second empty: speech running into its edge may be cut mid-word."""
GAP_S = 2.0
"""Silence between packed notes: Whisper closes a segment there and the words' times stay apart."""
EDGE_S = 1.5
LONGEST_PAUSE_S = 3.0
"""Speech left without words: at a note's start or end for longer than EDGE_S, or inside it for longer
than LONGEST_PAUSE_S (the VAD already cut pauses over 2 s), means Whisper stopped early or skipped it."""


def pack(
    lengths_s: Sequence[float], *, gap_s: float = GAP_S, limit_s: float = PACK_LIMIT_S
) -> list[list[tuple[int, float]]]:
    """First fit, in the given (fair) order: windows as lists of (note index, offset in seconds)."""
    windows: list[list[tuple[int, float]]] = []
    ends: list[float] = []
    for index, length in enumerate(lengths_s):
        for w, end in enumerate(ends):
            if end + gap_s + length <= limit_s:
                windows[w].append((index, end + gap_s))
                ends[w] = end + gap_s + length
                break
        else:
            windows.append([(index, 0.0)])
            ends.append(length)
    return windows


@dataclass(slots=True, eq=False)
class Prepared:
    index: int
    speech: np.ndarray
    """The note's audio with the VAD's silences cut out, as transcribe() decodes it."""
    duration_s: float
    chunks: list[dict[str, int]] | None
    language: tuple[str, float] | None = None
    """The note's own detected language and its probability, when the options declare none."""
    language_reason: str = "detected"
    """Why it is in that language (core/language_choice.py Reason)."""
    audio: np.ndarray | None = field(default=None, repr=False)
    """The note's own recording, for the quality pass's guard (core/engines/batching.py)."""
    speech_mask: np.ndarray | None = field(default=None, repr=False)
    """Its core/quality.py speech_mask when the caller computed it already."""

    @property
    def speech_s(self) -> float:
        return len(self.speech) / SAMPLE_RATE


@dataclass(slots=True)
class Window:
    notes: list[tuple[Prepared, float]]
    """(note, offset in seconds) in the order they sit in the window."""
    audio: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        end = max(round(offset * SAMPLE_RATE) + len(note.speech) for note, offset in self.notes)
        self.audio = np.zeros(end, dtype=np.float32)
        for note, offset in self.notes:
            start = round(offset * SAMPLE_RATE)
            self.audio[start : start + len(note.speech)] = note.speech

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def under(self, at_s: float) -> Prepared | None:
        """The note sounding at a time in the window; None in the silence between notes."""
        for note, offset in self.notes:
            if offset <= at_s <= offset + note.speech_s:
                return note
        return None

    def nearest(self, at_s: float) -> Prepared:
        def distance(item: tuple[Prepared, float]) -> float:
            note, offset = item
            return max(offset - at_s, at_s - (offset + note.speech_s), 0.0)

        return min(self.notes, key=distance)[0]

    def owners(self, words: Sequence[dict[str, Any]], decoded_span: tuple[float, float] | None) -> list[Prepared]:
        """Each word's note, for the words of one segment.

        Whisper's own timestamp tokens mark where a segment starts and ends, and the silence between
        notes makes it close one there: a segment whose decoded span starts and ends by the same note
        belongs to it whole. The words' aligned times, which cross-attention may smear over a gap,
        only split a segment that spans notes: a word goes to the note under its middle, or, when in a
        gap, with the nearest words of its segment.
        """
        if decoded_span is not None:
            first, last = (self.nearest(at) for at in decoded_span)
            if first is last:
                return [first] * len(words)
        middles = [(w["start"] + w["end"]) / 2 for w in words]
        under = [self.under(m) for m in middles]
        owners = []
        for i, note in enumerate(under):
            if note is None:
                sides = [(abs(middles[j] - middles[i]), found) for j, found in enumerate(under) if found is not None]
                note = min(sides, key=lambda side: side[0])[1] if sides else self.nearest(middles[i])
            owners.append(note)
        return owners


MIN_WORDS_PER_S = 0.7
"""Speech runs at two to three words a second: a note with far fewer lost words in its shared window
(Whisper tends to skip a phrase it has just written, e.g. two notes saying the same thing)."""


def incomplete(note: Prepared, segments: list[Segment]) -> bool:
    spans = _spans(segments)
    return not spans or note.speech_s - spans[-1][1] > EDGE_S or _holes(spans, segments, note.speech_s)


def ended_early(note: Prepared, segments: list[Segment]) -> bool:
    """Whisper stopped before the note's speech did, with nothing missing before that: transcribe() would
    decode on from its last timestamp, and so may a reduced window (core/engines/batching.py)."""
    spans = _spans(segments)
    return bool(spans) and note.speech_s - spans[-1][1] > EDGE_S and not _holes(spans, segments, spans[-1][1])


def _spans(segments: list[Segment]) -> list[tuple[float, float]]:
    return [(w.start, w.end) for s in segments for w in s.words] or [(s.start, s.end) for s in segments]


def _holes(spans: list[tuple[float, float]], segments: list[Segment], heard_s: float) -> bool:
    """Speech left without words before `heard_s`: at the start, in a pause, or in too few words for it."""
    pauses = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    # One word smeared over seconds of speech also "covers" the note: count the words too.
    words = sum(len(s.text.split()) for s in segments)
    sparse = heard_s >= 2 and words < MIN_WORDS_PER_S * heard_s
    return spans[0][0] > EDGE_S or any(p > LONGEST_PAUSE_S for p in pauses) or sparse


def split_window(window: Window, segments: list[dict[str, Any]], result: Generated) -> dict[Prepared, list[Segment]]:
    """Each note's segments, in the note's own (speech) time (see Window.owners for who gets which word)."""
    if len(window.notes) == 1:
        note = window.notes[0][0]
        return {note: [_segment(s, result, 0.0, note.speech_s) for s in segments]}
    from faster_whisper.transcribe import get_compression_ratio

    split: dict[Prepared, list[Segment]] = {note: [] for note, _ in window.notes}
    offsets = dict(window.notes)
    for raw in segments:
        owned: dict[Prepared, list[dict[str, Any]]] = defaultdict(list)
        words = raw.get("words", ())
        for word, note in zip(words, window.owners(words, raw.get("decoded_span")), strict=True):
            owned[note].append(word)
        for note, words in owned.items():
            offset = offsets[note]
            shifted = tuple(_word(w, offset, note.speech_s) for w in words)
            text = "".join(w.text for w in shifted)
            logprob = float(np.mean([math.log(max(w.probability, 1e-6)) for w in shifted]))
            split[note].append(Segment(
                start=shifted[0].start, end=shifted[-1].end, text=text, avg_logprob=logprob,
                no_speech_prob=result.no_speech_prob, compression_ratio=get_compression_ratio(text.strip()),
                words=shifted,
            ))
    return split


def _segment(raw: dict[str, Any], result: Generated, offset: float, length: float) -> Segment:
    from faster_whisper.transcribe import get_compression_ratio

    words = tuple(_word(w, offset, length) for w in raw.get("words", ()))
    text = "".join(w.text for w in words) if words else str(raw["text"])
    return Segment(
        start=words[0].start if words else _clip(raw["start"] - offset, length),
        end=words[-1].end if words else _clip(raw["end"] - offset, length),
        text=text, avg_logprob=result.avg_logprob, no_speech_prob=result.no_speech_prob,
        compression_ratio=get_compression_ratio(text.strip()), words=words,
        tokens=tuple(int(t) for t in raw.get("tokens", ())), temperature=result.temperature,
    )


def _word(raw: dict[str, Any], offset: float, length: float) -> Word:
    return Word(_clip(raw["start"] - offset, length), _clip(raw["end"] - offset, length), raw["word"],
                float(raw["probability"]))


def _clip(value: float, length: float) -> float:
    return min(max(0.0, float(value)), length)


def restore(note: Prepared, segments: list[Segment], *, keep_words: bool) -> list[Segment]:
    """From the VAD-cut speech back to the note's own clock (as transcribe() does), words kept if asked."""
    from faster_whisper.vad import SpeechTimestampsMap

    restored = []
    times = SpeechTimestampsMap(note.chunks, SAMPLE_RATE) if note.chunks else None
    for segment in segments:
        words = segment.words
        start, end = segment.start, segment.end
        if times is not None:
            words = tuple(_restore_word(times, w) for w in words)
            start = words[0].start if words else times.get_original_time(start)
            end = words[-1].end if words else times.get_original_time(end, is_end=True)
        restored.append(Segment(
            start=start, end=min(end, note.duration_s), text=segment.text, avg_logprob=segment.avg_logprob,
            no_speech_prob=segment.no_speech_prob, compression_ratio=segment.compression_ratio,
            words=words if keep_words else (), tokens=segment.tokens, temperature=segment.temperature,
        ))
    return restored


def _restore_word(times: Any, word: Word) -> Word:
    chunk = times.get_chunk_index((word.start + word.end) / 2)
    return Word(times.get_original_time(word.start, chunk), times.get_original_time(word.end, chunk), word.text,
                word.probability)
