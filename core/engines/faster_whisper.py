"""The default engine: faster-whisper (CTranslate2) on CUDA or the CPU (the protocol: core/engines/base.py).

It picks CUDA (float16) when CTranslate2 can really run there and otherwise the CPU (int8), saying why in
one warning instead of crashing on a half-usable GPU. For cross-request batching it hands out its
decoding steps (`steps`, core/engines/decoding_steps.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import CannotTranslate
from ..language_choice import LanguageChoice, choose, reason_of
from ..media import SAMPLE_RATE
from ..options import TranscribeOptions
from ..transcript import Segment, Transcript, Word
from .base import Batching, DeviceChoice, Progress, SegmentSink
from .decoding_steps import DecodingSteps, speech_only
from .models import ResolvedModel

log = logging.getLogger(__name__)


class FasterWhisperEngine:
    batching: Batching = "windows"

    def __init__(
        self,
        model: ResolvedModel,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        workers: int = 1,
        beam_size: int = 5,
        vad: bool = True,
    ) -> None:
        from faster_whisper import WhisperModel

        self.device = choose_device(device, compute_type)
        if self.device.device == "cpu":
            limit_malloc_arenas()
        self._model = _load(WhisperModel, model, self.device, cpu_threads, workers)
        if self.device.device == "cuda" and not _runs(self._model):
            self.device = DeviceChoice(
                "cpu", _cpu_compute(compute_type),
                "CUDA was found but CTranslate2 could not run on it (its CUDA 12 libraries, "
                "cuBLAS and cuDNN 9, did not load); using the CPU",
            )
            log.warning("%s", self.device.reason)
            self._model = _load(WhisperModel, model, self.device, cpu_threads, workers)
        self.multilingual = bool(self._model.model.is_multilingual)
        self.beam_size = beam_size
        self.vad = vad
        self.model_id = f"{model.name}:{self.device.compute_type}:beam{beam_size}:vad{int(vad)}"
        self.steps = DecodingSteps(self._model, multilingual=self.multilingual, vad=vad, device=self.device.device)
        self._lone: Any = None

    def detect_language(self, audio: np.ndarray, among: tuple[str, ...] = ()) -> tuple[str, float]:
        if not self.multilingual:
            return "en", 1.0
        language, probability, ranked = self._model.detect_language(audio)
        if among:
            allowed = [(code, p) for code, p in ranked if code in among]
            if allowed:
                language, probability = max(allowed, key=lambda item: item[1])
        return language, float(probability)

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """A lone short note takes the reduced-window shortcut where the device gains from it (measured;
        core/engines/batching.py `Batcher.transcribe_reduced`), guarded by Whisper's checks and the quality
        pass; anything else, or a note failing a guard, takes the plain path."""
        shortcut = self._lone_batcher().transcribe_reduced(audio, options)
        if shortcut is None:
            return self.transcribe_plain(audio, options, progress, on_segment)
        for segment in shortcut.segments:  # decoded in one go: every segment at the end
            if on_segment:
                on_segment(segment)
        if progress:
            progress(1.0)
        return dataclasses.replace(shortcut, model=self.model_id)

    def _lone_batcher(self) -> Any:
        if self._lone is None:
            from .batching import Batcher

            self._lone = Batcher(self, beam_size=self.beam_size)  # shares the engine's measured strategy
        return self._lone

    def transcribe_plain(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """faster-whisper's transcribe() with its whole 30 s windows and the temperature fallback: the path
        every shortcut falls back to."""
        temperature = options.temperature if options.temperature is not None else _FALLBACK_TEMPERATURES
        return self._run(audio, options, progress, vad=self.vad, prompt=options.vocabulary or None,
                         words=options.word_timestamps, temperature=temperature, on_segment=on_segment)

    def transcribe_part(self, audio: np.ndarray, options: TranscribeOptions, prompt: str) -> Transcript:
        """A stretch the first pass left without words (core/coverage.py), decoded again on its own.

        No VAD filter (it may be what cut the speech), the neighbouring text as the prompt so the stretch
        is read in context, and word probabilities, by which the coverage check judges the result. One
        greedy-or-beam pass, no temperature fallback: sampling hotter over speech Whisper could not read
        costs five more decodings and gives confident nonsense, which the check would then have to refuse.
        """
        context = " ".join(part for part in (options.vocabulary, prompt) if part and part.strip())
        return self._run(audio, options, None, vad=False, prompt=context or None, words=True,
                         temperature=options.temperature or 0.0)

    def _run(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None, *, vad: bool,
        prompt: str | None, words: bool, temperature: float | tuple[float, ...],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        if options.task == "translate" and not self.multilingual:
            raise CannotTranslate(self.model_id)  # never a transcript labelled as translated
        chosen = self.choose_language(audio, options) if options.language is None else None
        language = options.language if chosen is None else chosen.language
        if not self.multilingual:
            language = "en"
        with self._model.encode.remembering():  # faster-whisper's language pass, then its decoding
            segments, info = self._model.transcribe(
                audio,
                language=language,
                task=options.task,
                beam_size=self.beam_size,
                initial_prompt=prompt,
                word_timestamps=words,
                vad_filter=vad,
                temperature=temperature,
            )
            collected = []
            for raw in segments:  # the generator does the work: iterate it here, in the worker thread
                collected.append(_segment(raw))
                if on_segment:
                    on_segment(collected[-1])
                if progress and duration:
                    progress(min(1.0, raw.end / duration))
        probability = 1.0 if chosen is None else chosen.probability
        reason = reason_of(options, self.multilingual) if chosen is None else chosen.reason
        if chosen is None and options.language is None:
            probability = info.language_probability
            log.debug("language %s (%s, p=%.2f) of a %.1f s clip", info.language, reason, probability, duration)
        return Transcript(
            segments=tuple(collected),
            language=info.language,
            language_probability=float(probability),
            duration_s=duration,
            model=self.model_id,
            task=options.task,
            language_reason=reason,
        )

    def language_scores(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Every language's probability for the note, over what transcribe() detects on (the VAD's speech)."""
        speech = speech_only(audio, self.steps.speech_chunks(audio))
        _, _, ranked = self._model.detect_language(speech)
        return [(code, float(p)) for code, p in ranked]

    def choose_language(self, audio: np.ndarray, options: TranscribeOptions) -> LanguageChoice | None:
        """The language when detection needs help (CHATSCRIBE_LANGUAGES, the conversation's hints), from every
        language's probability over what transcribe() would detect on (the VAD's speech); None: let
        transcribe() detect as it does."""
        if not self.multilingual or not (options.expected_languages or options.language_hints):
            return None
        duration = len(audio) / SAMPLE_RATE
        choice = choose(self.language_scores(audio), duration_s=duration, expected=options.expected_languages,
                        hints=options.language_hints)
        log.debug("language %s (%s, p=%.2f) of a %.1f s clip", choice.language, choice.reason,
                  choice.probability, duration)
        return choice


_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MALLOC_ARENAS = 1


def limit_malloc_arenas() -> None:
    """Let glibc's malloc keep one arena for every thread (as MALLOC_ARENA_MAX=1 would).

    The model runs in worker threads, not in the main one as a plain faster-whisper script does, and glibc
    gives threads arenas of their own (up to 8 per core) whose freed large buffers stay mapped: measured
    on the core benchmark's files (a 60 s recording after a short one), chatscribe's peak was about 100 MB
    above plain faster-whisper's with the default arenas, 40 MB with 2, within 10 % with 1, and no slower
    (one transcription at a time on a CPU: the threads hardly ever allocate at once). An explicit
    MALLOC_ARENA_MAX in the environment wins; elsewhere than glibc this does nothing."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, MALLOC_ARENAS)  # M_ARENA_MAX
    except (OSError, AttributeError):  # musl or another libc: nothing to limit
        pass


def choose_device(device: str, compute_type: str) -> DeviceChoice:
    import ctranslate2

    if device == "cpu":
        return DeviceChoice("cpu", _cpu_compute(compute_type), "CHATSCRIBE_DEVICE=cpu")
    try:
        gpus = ctranslate2.get_cuda_device_count()
    except Exception as exc:  # a broken driver install raises rather than answering 0
        gpus = 0
        log.warning("CUDA probe failed: %s", exc)
    if gpus > 0:
        cuda_type = "float16" if compute_type == "auto" else compute_type
        return DeviceChoice("cuda", cuda_type, f"{gpus} CUDA device(s) visible to CTranslate2")
    why = "no CUDA device visible to CTranslate2"
    if device == "cuda":
        log.warning("CHATSCRIBE_DEVICE=cuda but %s; using the CPU", why)
    return DeviceChoice("cpu", _cpu_compute(compute_type), why)


def _cpu_compute(compute_type: str) -> str:
    return "int8" if compute_type in ("auto", "float16") else compute_type


def _load(model_cls: Any, model: ResolvedModel, device: DeviceChoice, cpu_threads: int, workers: int) -> Any:
    loaded = model_cls(
        str(model.path),
        device=device.device,
        compute_type=device.compute_type,
        cpu_threads=cpu_threads,
        num_workers=max(1, workers),
    )
    loaded.encode = EncodeOnce(lambda features: type(loaded).encode(loaded, features))  # the class's, as it is then
    return loaded


class EncodeOnce:
    """faster-whisper's transcribe() encodes a note's first 30 s window twice when it detects the language:
    once in detect_language() and again, from the same features, to decode it. The second call gets the
    first one's output: one encoder pass less per note of a window or more (about 0.6 s with `base` on a
    2-core CPU), the same numbers; a shorter note's two passes see differently padded features. Only
    inside `remembering()` (the engine's faster-whisper call): elsewhere, e.g. the batcher timing the same
    window twice to choose its strategy, every call really encodes. Kept per thread (worker threads share
    the model), and only until the next call."""

    def __init__(self, encode: Any) -> None:
        self._encode = encode
        self._local = threading.local()

    @contextlib.contextmanager
    def remembering(self) -> Iterator[None]:
        self._local.armed, self._local.pair = True, None
        try:
            yield
        finally:
            self._local.armed, self._local.pair = False, None

    def __call__(self, features: np.ndarray) -> Any:
        if not getattr(self._local, "armed", False):
            return self._encode(features)
        last, self._local.pair = self._local.pair, None
        if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        output = self._encode(features)
        self._local.pair = (features.copy(), output)
        return output


def _runs(model: Any) -> bool:
    """CTranslate2 loads cuBLAS/cuDNN lazily: only a real forward pass shows whether CUDA works."""
    try:
        model.detect_language(np.zeros(SAMPLE_RATE, dtype=np.float32))
        return True
    except Exception as exc:
        log.warning("CUDA forward pass failed: %s", exc)
        return False


def _segment(raw: Any) -> Segment:
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in (raw.words or ()))
    return Segment(
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text,
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        words=words,
        tokens=tuple(int(t) for t in raw.tokens),
        temperature=None if raw.temperature is None else float(raw.temperature),
    )
