"""The quality pass: flag doubtful segments and drop the ones Whisper invents where nobody speaks.

Whisper, given silence or noise, produces text anyway ("Thank you for watching", "...", "1.0%"). The
signals it gives with each segment (no-speech probability, average log-probability, compression ratio)
plus a voice-activity check of the audio under the segment separate those from speech.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import numpy as np

from .media import SAMPLE_RATE
from .transcript import HALLUCINATION, LOW_CONFIDENCE, Segment, Transcript

# Whisper's own thresholds (openai/whisper transcribe.py) and the usual phantom outputs.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
MAX_COMPRESSION = 2.4
MIN_SPEECH_COVERAGE = 0.1
FRAME_S = 0.01
"""The speech mask's resolution: 160 samples at 16 kHz."""
_PHANTOMS = {
    "thank you", "thanks for watching", "thank you for watching", "thank you very much",
    "thank you for watching please subscribe", "please subscribe", "subscribe to my channel",
    "you", "bye", "so", "okay", "oh", "the end", "music", "applause", "silence",
    "subtitles by the amaraorg community", "amaraorg", "untertitel im auftrag des zdf",
    "untertitelung des zdf 2020", "sous-titres réalisés par la communauté damaraorg",
}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def screen(transcript: Transcript, audio: np.ndarray, speech: np.ndarray | None = None) -> Transcript:
    """Flag low-confidence segments, drop likely hallucinations; no speech leaves no segments.

    `speech` is the audio's speech_mask when the caller has it already (the coverage check reuses it).
    """
    if speech is None:
        speech = speech_mask(audio)
    kept: list[Segment] = []
    dropped: list[Segment] = []
    for segment in transcript.segments:
        flags = _flags(segment, _coverage(speech, segment))
        target = dropped if HALLUCINATION in flags else kept
        target.append(dataclasses.replace(segment, flags=frozenset(flags)))
    has_speech = any(s.text.strip() for s in kept)
    return dataclasses.replace(
        transcript,
        segments=tuple(kept),
        dropped=tuple(dropped),
        language=transcript.language if has_speech else None,
        language_probability=transcript.language_probability if has_speech else 0.0,
    )


def segment_flags(segment: Segment, speech: np.ndarray) -> frozenset[str]:
    """The flags `screen` gives this one segment: the runner screens segments as they are decoded."""
    return frozenset(_flags(segment, _coverage(speech, segment)))


def _flags(segment: Segment, coverage: float) -> set[str]:
    words = normalize(segment.text).split()
    silent_under = coverage < MIN_SPEECH_COVERAGE
    if not words:  # "...", "♪", "-": never speech
        return {HALLUCINATION}
    if silent_under and (_is_phantom(words) or _doubtful(segment) or not any(c.isalpha() for c in segment.text)):
        return {HALLUCINATION}
    if segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOW_LOGPROB:
        return {HALLUCINATION}  # Whisper's own rule for "this window was silent"
    if segment.compression_ratio > MAX_COMPRESSION or _looping(words):
        return {HALLUCINATION}
    if segment.avg_logprob < LOW_LOGPROB or _weak_words(segment):
        return {LOW_CONFIDENCE}
    return set()


def normalize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _is_phantom(words: list[str]) -> bool:
    return " ".join(words) in _PHANTOMS


def is_phantom(text: str) -> bool:
    """One of the phrases Whisper says where nobody speaks ("Thank you.", "Bye.")."""
    return _is_phantom(normalize(text).split())


def _doubtful(segment: Segment) -> bool:
    return segment.no_speech_prob > 0.3 or segment.avg_logprob < -0.7


def _looping(words: list[str], n: int = 3, repeats: int = 4) -> bool:
    """The same phrase over and over: Whisper stuck in a decoding loop."""
    if len(words) < n * repeats:
        return False
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams.most_common(1)[0][1] >= repeats and len(grams) < len(words) / 2


def _weak_words(segment: Segment) -> bool:
    if not segment.words:
        return False
    return float(np.mean([w.probability for w in segment.words])) < 0.5


def speech_mask(audio: np.ndarray) -> np.ndarray:
    """Per 10 ms frame (FRAME_S): does Silero VAD (shipped with faster-whisper) hear speech?"""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    frames = np.zeros(len(audio) // 160 + 1, dtype=bool)
    if len(audio) == 0:
        return frames
    for span in get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300, speech_pad_ms=200)):
        frames[span["start"] // 160 : span["end"] // 160 + 1] = True
    return frames


def _coverage(speech: np.ndarray, segment: Segment) -> float:
    start = int(segment.start * SAMPLE_RATE) // 160
    end = max(start + 1, int(segment.end * SAMPLE_RATE) // 160)
    window = speech[start:end]
    return float(window.mean()) if len(window) else 0.0
