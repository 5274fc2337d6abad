"""Cross-request batching: several short notes through the model in one call.

Whisper pays for a whole 30 s window whatever the clip's length, so one by one a 4 s note costs almost
what a 30 s one does. Two ways to share that cost, picked from how the device behaves:

- packed: notes of one declared language placed in one window with silence between them, decoded
  once; every word goes back to the note under its timestamp (the CPU win, where the encoder's fixed
  cost per window dominates);
- batched: each note keeps its own window and the windows go through the model in one call (the GPU
  win, where a batch of windows costs little more than one).

Anything doubtful (a decoding that fails Whisper's own checks, a note that got no words) is transcribed
again on its own with `engine.transcribe`, so batching never loses a note's words.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from .engine import Generated, Progress
from .media import SAMPLE_RATE
from .options import TranscribeOptions
from .transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)

MAX_NOTE_S = 30.0
"""Longer media go through transcribe() alone: they need more than one window anyway."""
PACK_LIMIT_S = 29.0
"""Leave the window's last second empty: speech running into its edge may be cut mid-word."""
GAP_S = 2.0
"""Silence between packed notes: Whisper closes a segment there and the words' times stay apart."""
EDGE_S = 1.5
LONGEST_PAUSE_S = 3.0
"""Speech left without words: at a note's start or end for longer than EDGE_S, or inside it for longer
than LONGEST_PAUSE_S (the VAD already cut pauses over 2 s), means Whisper stopped early or skipped it."""
PACK_ROUNDS = 3
"""Packed notes Whisper left without words are packed again, this often, before they go alone."""
COMPRESSION_LIMIT = 2.4
LOGPROB_LIMIT = -1.0
"""Whisper's own checks: a window failing them is decoded again on its own, with the fallback schedule."""

Strategy = Literal["packed", "batched"]
BatchingMode = Literal["auto", "packed", "batched", "off"]
OnResult = Callable[[int, "Transcript | Exception"], None]
"""auto measures the device on the first batch; off transcribes every note alone."""


@runtime_checkable
class BatchEngine(Protocol):
    """What batching needs from an engine (FasterWhisperEngine has it)."""

    model_id: str
    multilingual: bool

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None
    ) -> Transcript: ...
    def feature_windows(self, audios: Sequence[np.ndarray]) -> np.ndarray: ...
    def encode(self, features: np.ndarray) -> Any: ...
    def select(self, encoder_output: Any, features: np.ndarray, indices: Sequence[int]) -> Any: ...
    def detect_languages(self, encoder_output: Any, among: tuple[str, ...] = ()) -> list[tuple[str, float]]: ...
    def tokenizer(self, language: str, task: str) -> Any: ...
    def generate(self, encoder_output: Any, tokenizers: Sequence[Any], vocabulary: str | None, *, beam_size: int,
                 temperature: float) -> list[Generated]: ...
    def split_segments(self, tokenizer: Any, tokens: list[int], duration_s: float) -> list[dict[str, Any]]: ...
    def align_words(self, windows: list[list[dict[str, Any]]], tokenizer: Any, encoder_output: Any,
                    durations_s: Sequence[float]) -> None: ...
    def speech_chunks(self, audio: np.ndarray) -> list[dict[str, int]] | None: ...


@dataclass(frozen=True, slots=True)
class Note:
    audio: np.ndarray
    """16 kHz mono float32."""
    options: TranscribeOptions


@dataclass(frozen=True, slots=True)
class Profile:
    strategy: Strategy
    reason: str
    """Measured numbers behind the choice, for the log and `chatscribe doctor`."""


def declared_language(options: TranscribeOptions, multilingual: bool) -> str | None:
    """The language every note of these options is known to be in, or None when it must be detected."""
    if not multilingual:
        return "en"
    if options.language:
        return options.language
    if len(options.expected_languages) == 1:
        return options.expected_languages[0]
    return None


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
class _Prepared:
    index: int
    speech: np.ndarray
    """The note's audio with the VAD's silences cut out, as transcribe() decodes it."""
    duration_s: float
    chunks: list[dict[str, int]] | None

    @property
    def speech_s(self) -> float:
        return len(self.speech) / SAMPLE_RATE


@dataclass(slots=True)
class _Window:
    notes: list[tuple[_Prepared, float]]
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

    def owner(self, at_s: float) -> _Prepared:
        """The note under a time in the window; in a gap, the nearer one."""
        def distance(item: tuple[_Prepared, float]) -> float:
            note, offset = item
            return max(offset - at_s, at_s - (offset + note.speech_s), 0.0)

        return min(self.notes, key=distance)[0]


_profiles: weakref.WeakKeyDictionary[Any, Profile] = weakref.WeakKeyDictionary()
_profile_lock = threading.Lock()


class Batcher:
    def __init__(
        self, engine: BatchEngine, *, strategy: BatchingMode = "auto", beam_size: int = 1,
        gap_s: float = GAP_S, device: str = "cpu",
    ) -> None:
        self.engine = engine
        self.strategy = strategy
        self.beam_size = beam_size
        self.gap_s = gap_s
        self.device = device
        self.model_id = f"{engine.model_id}:batch-beam{beam_size}"
        """Batched notes may decode with another beam than lone ones: part of every cache key."""

    # -- choosing the strategy ---------------------------------------------------------------------

    def profile(self) -> Profile:
        """Measured once per engine, on the first batch: does a batch of windows cost less per window?"""
        if self.strategy in ("packed", "batched"):
            return Profile(self.strategy, f"set to {self.strategy}")  # type: ignore[arg-type]
        with _profile_lock:
            if self.engine not in _profiles:
                _profiles[self.engine] = self._measure()
                log.info("batching: %s (%s)", _profiles[self.engine].strategy, _profiles[self.engine].reason)
            return _profiles[self.engine]

    def _measure(self) -> Profile:
        count = 8 if self.device == "cuda" else 2  # enough to show a GPU's parallelism; cheap on a CPU
        features = self.engine.feature_windows([np.zeros(SAMPLE_RATE, np.float32)] * count)
        self.engine.encode(features[:1])  # warm-up: first calls load kernels and fill caches
        one = _timed(lambda: self.engine.encode(features[:1]))
        each = _timed(lambda: self.engine.encode(features)) / count
        numbers = f"one window {one * 1000:.0f} ms, {count} in one call {each * 1000:.0f} ms each"
        if each < 0.5 * one:
            return Profile("batched", f"{numbers}: the device encodes windows in parallel")
        return Profile("packed", f"{numbers}: every window costs the same, so short notes share windows")

    # -- transcribing --------------------------------------------------------------------------------

    def transcribe(self, notes: Sequence[Note], on_result: OnResult | None = None) -> list[Transcript | Exception]:
        """One result per note, in order; an Exception in place of a note that failed on its own.

        `on_result(index, result)` hears of each note as soon as it is done: the batch's answers come
        before the notes that must go alone (media over 30 s, doubtful decodings) are transcribed.
        """
        answered: dict[int, Transcript | Exception] = {}

        def done(index: int, result: Transcript | Exception) -> None:
            answered[index] = result
            if on_result is not None:
                on_result(index, result)

        groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for index, note in enumerate(notes):
            groups[note.options.batch_key()].append(index)
        for indices in groups.values():
            for index, result in self._group([notes[i] for i in indices], indices).items():
                done(index, result)
        for index, note in enumerate(notes):
            if index not in answered:
                done(index, self._alone(note))
        return [answered[i] for i in range(len(notes))]

    def _group(self, notes: list[Note], indices: list[int]) -> dict[int, Transcript | Exception]:
        """Notes sharing options; the ones left out of the answer are transcribed alone."""
        options = notes[0].options
        done: dict[int, Transcript | Exception] = {}
        prepared = []
        for index, note in zip(indices, notes, strict=True):
            duration = len(note.audio) / SAMPLE_RATE
            if duration > MAX_NOTE_S:
                continue
            chunks = self.engine.speech_chunks(note.audio)
            if chunks is not None and not chunks:  # what transcribe() answers when the VAD hears nobody
                done[index] = self._transcript((), options, None, 0.0, duration)
                continue
            speech = np.concatenate([note.audio[c["start"] : c["end"]] for c in chunks]) if chunks else note.audio
            prepared.append(_Prepared(index, speech, duration, chunks))
        language = declared_language(options, self.engine.multilingual)
        packing = self.profile().strategy == "packed" and language is not None and options.task == "transcribe"
        for _ in range(PACK_ROUNDS if packing else 1):
            if len(prepared) < 2:
                break  # a single note goes alone, with the engine's own beam
            if packing:
                placements = pack([p.speech_s for p in prepared], gap_s=self.gap_s)
                windows = [_Window([(prepared[i], offset) for i, offset in window]) for window in placements]
            else:
                windows = [_Window([(p, 0.0)]) for p in prepared]
            try:
                answered, prepared = self._decode(windows, options, language)
            except Exception:  # the batch is an optimisation: a failure here must not fail the notes
                log.exception("batched decoding failed; transcribing these notes one by one")
                break
            done.update(answered)
        return done

    def _decode(
        self, windows: list[_Window], options: TranscribeOptions, language: str | None
    ) -> tuple[dict[int, Transcript], list[_Prepared]]:
        """The notes answered, and the packed notes to try again: Whisper stopped before their words."""
        engine = self.engine
        features = engine.feature_windows([w.audio for w in windows])
        encoded = engine.encode(features)
        if language is not None:
            languages = [(language, 1.0)] * len(windows)
        else:
            languages = engine.detect_languages(encoded, options.expected_languages)
        tokenizers = {code: engine.tokenizer(code, options.task) for code, _ in languages}
        window_tokenizers = [tokenizers[code] for code, _ in languages]
        temperature = options.temperature or 0.0
        generated = engine.generate(encoded, window_tokenizers, options.vocabulary, beam_size=self.beam_size,
                                    temperature=temperature)
        segments = [
            engine.split_segments(tok, g.tokens, w.duration_s)
            for tok, g, w in zip(window_tokenizers, generated, windows, strict=True)
        ]
        packed = any(len(w.notes) > 1 for w in windows)
        if packed or options.word_timestamps:
            self._align(windows, segments, languages, tokenizers, features, encoded)
        answered: dict[int, Transcript] = {}
        again: list[_Prepared] = []
        for window, window_segments, result, (code, probability) in zip(
            windows, segments, generated, languages, strict=True
        ):
            if options.temperature is None and _fails_checks(result):
                continue  # decoded again alone, with Whisper's temperature fallback
            for note, note_segments in _split(window, window_segments, result).items():
                if _incomplete(note, note_segments):
                    # Whisper may end a window early (transcribe() decodes the rest again): the note
                    # goes first in a window of the next round, or alone for one that was first already.
                    if len(window.notes) > 1 and note is not window.notes[0][0]:
                        again.append(note)
                    continue
                restored = _restore(note, note_segments, keep_words=options.word_timestamps)
                answered[note.index] = self._transcript(restored, options, code, probability, note.duration_s)
        return answered, sorted(again, key=lambda n: n.index)

    def _align(
        self, windows: list[_Window], segments: list[list[dict[str, Any]]], languages: list[tuple[str, float]],
        tokenizers: dict[str, Any], features: np.ndarray, encoded: Any,
    ) -> None:
        """Word times from cross-attention, per language (the alignment prompt names the language)."""
        by_language: dict[str, list[int]] = defaultdict(list)
        for k, (code, _) in enumerate(languages):
            if segments[k]:
                by_language[code].append(k)
        for code, ks in by_language.items():
            encoder_output = encoded if len(ks) == len(windows) else self.engine.select(encoded, features, ks)
            self.engine.align_words([segments[k] for k in ks], tokenizers[code], encoder_output,
                                    [windows[k].duration_s for k in ks])

    def _alone(self, note: Note) -> Transcript | Exception:
        try:
            return self.engine.transcribe(note.audio, note.options)
        except Exception as exc:
            return exc

    def _transcript(
        self, segments: Sequence[Segment], options: TranscribeOptions, language: str | None, probability: float,
        duration_s: float,
    ) -> Transcript:
        return Transcript(
            segments=tuple(segments), language=language, language_probability=probability, duration_s=duration_s,
            model=self.model_id, task=options.task,
        )


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _fails_checks(result: Generated) -> bool:
    return result.compression_ratio > COMPRESSION_LIMIT or result.avg_logprob < LOGPROB_LIMIT


def _incomplete(note: _Prepared, segments: list[Segment]) -> bool:
    spans = [(w.start, w.end) for s in segments for w in s.words] or [(s.start, s.end) for s in segments]
    if not spans:
        return True
    pauses = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    return spans[0][0] > EDGE_S or note.speech_s - spans[-1][1] > EDGE_S or any(p > LONGEST_PAUSE_S for p in pauses)


def _split(window: _Window, segments: list[dict[str, Any]], result: Generated) -> dict[_Prepared, list[Segment]]:
    """Each note's segments, in the note's own (speech) time; words go to the note under their middle."""
    if len(window.notes) == 1:
        note = window.notes[0][0]
        return {note: [_segment(s, result, 0.0, note.speech_s) for s in segments]}
    from faster_whisper.transcribe import get_compression_ratio

    split: dict[_Prepared, list[Segment]] = {note: [] for note, _ in window.notes}
    offsets = dict(window.notes)
    for raw in segments:
        owned: dict[_Prepared, list[dict[str, Any]]] = defaultdict(list)
        for word in raw.get("words", ()):
            owned[window.owner((word["start"] + word["end"]) / 2)].append(word)
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
    text = "".join(w.text for w in words) if words else _text(raw)
    return Segment(
        start=words[0].start if words else _clip(raw["start"] - offset, length),
        end=words[-1].end if words else _clip(raw["end"] - offset, length),
        text=text, avg_logprob=result.avg_logprob, no_speech_prob=result.no_speech_prob,
        compression_ratio=get_compression_ratio(text.strip()), words=words,
    )


def _text(raw: dict[str, Any]) -> str:
    return str(raw["text"])


def _word(raw: dict[str, Any], offset: float, length: float) -> Word:
    return Word(_clip(raw["start"] - offset, length), _clip(raw["end"] - offset, length), raw["word"],
                float(raw["probability"]))


def _clip(value: float, length: float) -> float:
    return min(max(0.0, float(value)), length)


def _restore(note: _Prepared, segments: list[Segment], *, keep_words: bool) -> list[Segment]:
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
            words=words if keep_words else (),
        ))
    return restored


def _restore_word(times: Any, word: Word) -> Word:
    chunk = times.get_chunk_index((word.start + word.end) / 2)
    return Word(times.get_original_time(word.start, chunk), times.get_original_time(word.end, chunk), word.text,
                word.probability)
