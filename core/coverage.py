"""The coverage check: speech the voice-activity detector hears never leaves the transcript silently.

Whisper can judge a whole 30 s window silent and go on after it: at a window boundary (the second window
of a 43 s note holding a full sentence), or where an English-only model hears another language. The
transcript then simply ends. After the quality pass this compares where the VAD hears speech (the mask the
quality pass already made) with where the transcript has words. A stretch of at least MIN_GAP_S of speech
without words is transcribed again on its own, without the VAD filter and with the neighbouring text as the
prompt, and what comes back is merged in time order. What still has no words becomes a `Gap`, and every
answer says that this part could not be transcribed (transcript.gap_note).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from .engines.base import Engine
from .media import SAMPLE_RATE
from .options import TranscribeOptions
from .quality import FRAME_S, is_phantom, screen
from .transcript import Gap, Segment, Transcript, Word

log = logging.getLogger(__name__)

MIN_GAP_S = 1.5
"""Seconds of heard speech without a word that make a stretch worth transcribing again (or reporting)."""
MAX_PAUSE_S = 1.0
"""A pause this short inside uncovered speech does not split it into two stretches."""
EDGE_S = 0.3
"""The clip transcribed again reaches this far beyond the stretch, never into a neighbour's words."""
MIN_WORD_PROBABILITY = 0.6
MIN_LOGPROB = -0.7
"""A second pass over speech Whisper first took for silence must be sure of itself: an English-only model
reading German gives fluent-looking nonsense with mean word probabilities near 0.4 and log-probabilities
below -0.8, real English retried alone scores above 0.8 and -0.4 (tiny.en, shared audio)."""
PROMPT_CHARS = 200


def covered_mask(segments: Sequence[Segment], frames: int) -> np.ndarray:
    """Per speech-mask frame: does the transcript have a word there (its words' times, or its segment's)?"""
    covered = np.zeros(frames, dtype=bool)
    for segment in segments:
        if not segment.text.strip():
            continue
        spans = [(w.start, w.end) for w in segment.words] if segment.words else [(segment.start, segment.end)]
        for start, end in spans:
            covered[max(0, int(start / FRAME_S)) : math.ceil(end / FRAME_S) + 1] = True
    return covered


def uncovered(speech: np.ndarray, covered: np.ndarray, min_s: float = MIN_GAP_S) -> list[Gap]:
    """Stretches of speech without words holding at least `min_s` seconds of speech, in time order.

    Short pauses inside a stretch are bridged (MAX_PAUSE_S); a word anywhere ends it.
    """
    state = np.where(covered, 0, np.where(speech[: len(covered)], 1, 2))  # 0 words, 1 bare speech, 2 silence
    gaps: list[Gap] = []
    first = last = -1
    spoken = 0

    def close() -> None:
        if first >= 0 and spoken * FRAME_S >= min_s:
            gaps.append(Gap(round(float(first * FRAME_S), 2), round(float((last + 1) * FRAME_S), 2)))

    edges = np.flatnonzero(np.diff(state)) + 1
    for begin, end in zip(np.r_[0, edges], np.r_[edges, len(state)], strict=True):
        kind = state[begin] if end > begin else 0
        if kind == 1:
            first = begin if first < 0 else first
            last, spoken = end - 1, spoken + (end - begin)
        elif kind == 0 or (end - begin) * FRAME_S >= MAX_PAUSE_S:
            close()
            first, spoken = -1, 0
    close()
    return gaps


def complete(
    transcript: Transcript, audio: np.ndarray, speech: np.ndarray, engine: Engine, options: TranscribeOptions
) -> Transcript:
    """`transcript` (after the quality pass) with its speech-without-words transcribed again, or recorded."""
    stretches = uncovered(speech, covered_mask(transcript.segments, len(speech)))
    if not stretches:
        return transcript  # the usual case: one VAD pass (the quality pass's) and nothing more
    segments = list(transcript.segments)
    dropped = list(transcript.dropped)
    language = (transcript.language, transcript.language_probability)
    for stretch in stretches:
        part = _again(stretch, transcript.segments, audio, speech, engine, options)
        if part is None:
            continue
        if _usable(part.segments):
            segments += part.segments
            if language[0] is None:
                language = (part.language, part.language_probability)
        else:
            dropped += part.segments
        dropped += part.dropped
    segments.sort(key=lambda s: (s.start, s.end))
    if not options.word_timestamps:
        segments = [dataclasses.replace(s, words=()) if s.words else s for s in segments]
    gaps = uncovered(speech, covered_mask(segments, len(speech)))
    if gaps:
        log.info("%d stretch(es) of speech without words after transcribing them again: %s", len(gaps),
                 ", ".join(f"{g.start:.1f}-{g.end:.1f} s" for g in gaps))
    return dataclasses.replace(
        transcript, segments=tuple(segments), dropped=tuple(dropped), gaps=tuple(gaps),
        english_only=bool(gaps) and not engine.multilingual,
        language=language[0] if segments else transcript.language,
        language_probability=language[1] if segments else transcript.language_probability,
    )


def _again(
    stretch: Gap, around: Sequence[Segment], audio: np.ndarray, speech: np.ndarray, engine: Engine,
    options: TranscribeOptions,
) -> Transcript | None:
    """The stretch transcribed on its own, on the note's time line and through the quality pass."""
    duration = len(audio) / SAMPLE_RATE
    before = [s for s in around if s.text.strip() and s.end <= stretch.start + EDGE_S]
    after = [s for s in around if s.text.strip() and s.start >= stretch.end - EDGE_S]
    start = max(0.0, stretch.start - EDGE_S, *(_last_word(s) for s in before))
    end = min(duration, stretch.end + EDGE_S, *(_first_word(s) for s in after))
    if end - start < MIN_GAP_S / 2:
        return None
    context = before[-3:] if before else after[:1]  # what was said just before reads the stretch best
    prompt = " ".join(s.text.strip() for s in context)
    clip = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    try:
        raw = engine.transcribe_part(clip, options, prompt[-PROMPT_CHARS:])
    except Exception:  # a second try must never cost the note its first answer
        log.exception("transcribing %.1f-%.1f s again failed; it is reported as not transcribed",
                      stretch.start, stretch.end)
        return None
    shifted = tuple(_shift(s, start, end) for s in raw.segments)
    checked = screen(dataclasses.replace(raw, segments=shifted), audio, speech)
    # "Thank you." at the end of a clip is Whisper's habit, not speech the first pass missed.
    phantoms = tuple(s for s in checked.segments if is_phantom(s.text))
    if not phantoms:
        return checked
    kept = tuple(s for s in checked.segments if not is_phantom(s.text))
    return dataclasses.replace(checked, segments=kept, dropped=checked.dropped + phantoms)


def _usable(segments: Sequence[Segment]) -> bool:
    spoken = [s for s in segments if s.text.strip()]
    if not spoken:
        return False
    words = [w.probability for s in spoken for w in s.words]
    if words:
        return float(np.mean(words)) >= MIN_WORD_PROBABILITY
    weights = [max(s.end - s.start, 0.01) for s in spoken]
    return float(np.average([s.avg_logprob for s in spoken], weights=weights)) >= MIN_LOGPROB


def _shift(segment: Segment, offset: float, limit: float) -> Segment:
    def at(t: float) -> float:
        return min(t + offset, limit)

    words = tuple(Word(at(w.start), at(w.end), w.text, w.probability) for w in segment.words)
    return dataclasses.replace(segment, start=at(segment.start), end=at(segment.end), words=words)


def _last_word(segment: Segment) -> float:
    return segment.words[-1].end if segment.words else segment.end


def _first_word(segment: Segment) -> float:
    return segment.words[0].start if segment.words else segment.start
