"""Engines turn 16 kHz audio into raw segments. One instance per process, shared by every bot.

`FasterWhisperEngine` is the default; it picks CUDA (float16) when CTranslate2 can really run there
and otherwise CPU (int8), saying why in one warning instead of crashing on a half-usable GPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..media import SAMPLE_RATE
from ..options import TranscribeOptions
from ..transcript import Segment, Transcript, Word
from .models import ResolvedModel

log = logging.getLogger(__name__)

Progress = Callable[[float], None]
"""Called from the worker thread with the fraction of the audio done (0..1)."""


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    device: str
    compute_type: str
    reason: str
    """Why this device: shown by `chatscribe doctor`."""


class Engine(Protocol):
    model_id: str
    """Identifies the weights and decoding settings: part of every cache key."""
    device: DeviceChoice
    multilingual: bool

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None
    ) -> Transcript:
        """Blocking; call it from a worker thread."""
        ...


class FasterWhisperEngine:
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

    def detect_language(self, audio: np.ndarray, among: tuple[str, ...] = ()) -> tuple[str, float]:
        if not self.multilingual:
            return "en", 1.0
        language, probability, ranked = self._model.detect_language(audio)
        if among:
            allowed = [(code, p) for code, p in ranked if code in among]
            if allowed:
                language, probability = max(allowed, key=lambda item: item[1])
        return language, float(probability)

    # -- the pieces cross-request batching (core/engines/batching.py) builds on ------------------------------

    def feature_windows(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """Log-Mel features of each clip in one 30 s window, (clips, mels, 3000), as transcribe() makes them."""
        from faster_whisper.audio import pad_or_trim

        extractor = self._model.feature_extractor
        windows = []
        for audio in audios:
            features = extractor(audio[:WINDOW_SAMPLES])
            windows.append(pad_or_trim(features[:, : features.shape[-1] - 1], extractor.nb_max_frames))
        return np.stack(windows).astype(np.float32)

    def encode(self, features: np.ndarray) -> Any:
        """One encoder pass over a batch of windows (a CTranslate2 StorageView)."""
        return self._model.encode(features)

    def select(self, encoder_output: Any, features: np.ndarray, indices: Sequence[int]) -> Any:
        """The encoder output of some windows of a batch: sliced on the CPU, encoded again on a GPU."""
        if self.device.device == "cpu":
            import ctranslate2

            chosen = np.ascontiguousarray(np.asarray(encoder_output)[list(indices)])
            return ctranslate2.StorageView.from_array(chosen)
        return self.encode(features[list(indices)])

    def detect_languages(self, encoder_output: Any, among: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """The most likely language of each encoded window, restricted to `among` when given."""
        if not self.multilingual:
            return [("en", 1.0)] * int(encoder_output.shape[0])
        detected = []
        for ranked in self._model.model.detect_language(encoder_output):
            scores = [(token[2:-2], float(p)) for token, p in ranked]  # "<|en|>" -> "en"
            allowed = [item for item in scores if item[0] in among] or scores
            detected.append(max(allowed, key=lambda item: item[1]))
        return detected

    def languages_of(self, audios: Sequence[np.ndarray], among: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """Each clip's language, as transcribe() would detect it, for a fraction of its cost.

        CTranslate2's encoder takes fewer frames than a whole window, so each clip is encoded at its own
        length plus a second of the window's padding: a 5 s note costs about a sixth of a 30 s window, and
        the language and its probability stay those the whole window gives.
        """
        if not self.multilingual:
            return [("en", 1.0)] * len(audios)
        detected = []
        for audio in audios:
            seconds = min(len(audio) / SAMPLE_RATE + 1.0, WINDOW_SAMPLES / SAMPLE_RATE)
            frames = 2 * math.ceil(seconds * 50)  # 100 frames a second, an even count for the strided conv
            features = np.ascontiguousarray(self.feature_windows([audio])[:, :, :frames])
            detected += self.detect_languages(self.encode(features), among)
        return detected

    def tokenizer(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(
            self._model.hf_tokenizer, self.multilingual, task=task if self.multilingual else "transcribe",
            language=language if self.multilingual else "en",
        )

    def generate(
        self, encoder_output: Any, tokenizers: Sequence[Any], vocabulary: str | None, *, beam_size: int,
        temperature: float,
    ) -> list[Generated]:
        """Decode every encoded window in one batched call, with timestamps, as transcribe() decodes one."""
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        model = self._model
        prompts = [
            model.get_prompt(tok, tok.encode(" " + vocabulary.strip()) if vocabulary else []) for tok in tokenizers
        ]
        sampling = {"sampling_temperature": temperature, "sampling_topk": 0} if temperature > 0 else {}
        results = model.model.generate(
            encoder_output, prompts, beam_size=1 if temperature > 0 else beam_size, max_length=model.max_length,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=list(get_suppressed_tokens(tokenizers[0], (-1,)) or ()),
            max_initial_timestamp_index=round(1.0 / model.time_precision), **sampling,
        )
        generated = []
        for tok, result in zip(tokenizers, results, strict=True):
            tokens = list(result.sequences_ids[0])
            generated.append(Generated(
                tokens=tokens, avg_logprob=float(result.scores[0]) * len(tokens) / (len(tokens) + 1),
                no_speech_prob=float(result.no_speech_prob),
                compression_ratio=get_compression_ratio(tok.decode(tokens).strip()),
            ))
        return generated

    def split_segments(self, tokenizer: Any, tokens: list[int], duration_s: float) -> list[dict[str, Any]]:
        """Cut one window's tokens at its timestamp tokens: dicts with start, end, text, tokens.

        Unlike transcribe(), which decodes the rest again from the last timestamp, a batched window is
        decoded once: text after the last timestamp is kept, ending with the window.
        """
        begin, precision = tokenizer.timestamp_begin, self._model.time_precision
        segments: list[dict[str, Any]] = []
        text: list[int] = []
        start = 0.0
        for token in tokens:
            if token < tokenizer.eot:
                text.append(token)
            elif token >= begin:
                at = (token - begin) * precision
                if text:
                    segments.append({"start": start, "end": at, "tokens": text, "seek": 0})
                    text = []
                start = at
        if text:
            segments.append({"start": start, "end": max(start, duration_s), "tokens": text, "seek": 0})
        for segment in segments:
            segment["text"] = tokenizer.decode(segment["tokens"])
            segment["decoded_span"] = (segment["start"], segment["end"])  # align_words moves start and end
        return [s for s in segments if s["text"].strip()]

    def align_words(
        self, windows: list[list[dict[str, Any]]], tokenizer: Any, encoder_output: Any, durations_s: Sequence[float]
    ) -> None:
        """Add "words" (start, end, word, probability) to each window's segments from cross-attention.

        Every window needs at least one segment: the alignment cannot take an empty token list.
        """
        sizes = [int(np.ceil(d) * self._model.frames_per_second) for d in durations_s]
        self._model.add_word_timestamps(windows, tokenizer, encoder_output, sizes, _PREPEND, _APPEND, 0.0)

    def speech_chunks(self, audio: np.ndarray) -> list[dict[str, int]] | None:
        """Where the VAD filter of transcribe() hears speech (sample spans), or None when it is off."""
        if not self.vad:
            return None
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return list(get_speech_timestamps(audio, VadOptions()))

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None
    ) -> Transcript:
        temperature = options.temperature if options.temperature is not None else _FALLBACK_TEMPERATURES
        return self._run(audio, options, progress, vad=self.vad, prompt=options.vocabulary or None,
                         words=options.word_timestamps, temperature=temperature)

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
    ) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        language, probability = options.language, 1.0
        if language is None and options.expected_languages:
            language, probability = self.detect_language(audio, options.expected_languages)
        if not self.multilingual:
            language = "en"
        segments, info = self._model.transcribe(
            audio,
            language=language,
            task=options.task if self.multilingual else "transcribe",
            beam_size=self.beam_size,
            initial_prompt=prompt,
            word_timestamps=words,
            vad_filter=vad,
            temperature=temperature,
        )
        collected = []
        for raw in segments:  # the generator does the work: iterate it here, in the worker thread
            collected.append(_segment(raw))
            if progress and duration:
                progress(min(1.0, raw.end / duration))
        if options.language is None and not options.expected_languages:
            probability = info.language_probability
        return Transcript(
            segments=tuple(collected),
            language=info.language,
            language_probability=float(probability),
            duration_s=duration,
            model=self.model_id,
            task=options.task,
        )


_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"
"""faster-whisper's defaults for attaching punctuation to words."""
WINDOW_SAMPLES = 30 * SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Generated:
    """One decoded window."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float



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


def _load(model_cls, model: ResolvedModel, device: DeviceChoice, cpu_threads: int, workers: int):  # type: ignore[no-untyped-def]
    return model_cls(
        str(model.path),
        device=device.device,
        compute_type=device.compute_type,
        cpu_threads=cpu_threads,
        num_workers=max(1, workers),
    )


def _runs(model) -> bool:  # type: ignore[no-untyped-def]
    """CTranslate2 loads cuBLAS/cuDNN lazily: only a real forward pass shows whether CUDA works."""
    try:
        model.detect_language(np.zeros(SAMPLE_RATE, dtype=np.float32))
        return True
    except Exception as exc:
        log.warning("CUDA forward pass failed: %s", exc)
        return False


def _segment(raw) -> Segment:  # type: ignore[no-untyped-def]
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in (raw.words or ()))
    return Segment(
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text,
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        words=words,
    )
