"""faster-whisper's transcribe() taken apart into the steps cross-request batching composes.

transcribe() runs features -> encoder -> language -> decoder -> segments -> word times for one input, one
window at a time. Batching (core/engines/batching.py) needs each step on its own, over several windows at
once, so these steps reach into faster-whisper's and CTranslate2's internals (the WhisperModel, its
feature extractor, tokenizer and `generate`), and do each step as transcribe() does it. Only this module
and faster_whisper.py know those internals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media import SAMPLE_RATE

WINDOW_SAMPLES = 30 * SAMPLE_RATE
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"
"""faster-whisper's defaults for attaching punctuation to words."""


@dataclass(frozen=True, slots=True)
class Generated:
    """One decoded window."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float = 0.0
    """What the window was decoded at (verbose_json reports it)."""


TOKENS_PER_S = 12


def reduced_frames(seconds: float) -> int:
    """Feature frames of a reduced encoder window of `seconds` (at most the whole 30 s window).

    CTranslate2's Whisper encoder takes fewer frames than a whole window and costs about what the frames
    it gets cost (attention grows with their square): 100 frames a second, an even count for the
    strided convolution."""
    return 2 * math.ceil(min(seconds, WINDOW_SAMPLES / SAMPLE_RATE) * 50)


class DecodingSteps:
    def __init__(self, model: Any, *, multilingual: bool, vad: bool, device: str) -> None:
        """`model` is a loaded faster_whisper.WhisperModel; `device` the one it really runs on."""
        self._model = model
        self.multilingual = multilingual
        self.vad = vad
        self.device = device

    def feature_windows(self, audios: Sequence[np.ndarray], seconds: float | None = None) -> np.ndarray:
        """Log-Mel features of each clip in one 30 s window, (clips, mels, 3000), as transcribe() makes them;
        with `seconds`, in a reduced window of that length (`reduced_frames`), each clip padded to it."""
        from faster_whisper.audio import pad_or_trim

        extractor = self._model.feature_extractor
        frames = extractor.nb_max_frames if seconds is None else reduced_frames(seconds)
        windows = []
        for audio in audios:
            features = extractor(audio[: frames * extractor.hop_length])
            windows.append(pad_or_trim(features[:, : features.shape[-1] - 1], frames))
        return np.stack(windows).astype(np.float32)

    def encode(self, features: np.ndarray) -> Any:
        """One encoder pass over a batch of windows (a CTranslate2 StorageView)."""
        return self._model.encode(features)

    def encode_each(self, features: np.ndarray) -> Any:
        """One encoder pass per window, the outputs stacked into one batch for the decoder: on a CPU where
        a batch of windows costs more per window than one window alone (measured by the batcher)."""
        if len(features) == 1:
            return self.encode(features)
        import ctranslate2

        outputs = [np.asarray(self.encode(np.ascontiguousarray(features[i : i + 1]))) for i in range(len(features))]
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(outputs)))

    def select(self, encoder_output: Any, features: np.ndarray, indices: Sequence[int]) -> Any:
        """The encoder output of some windows of a batch: sliced on the CPU, encoded again on a GPU."""
        if self.device == "cpu":
            import ctranslate2

            chosen = np.ascontiguousarray(np.asarray(encoder_output)[list(indices)])
            return ctranslate2.StorageView.from_array(chosen)
        return self.encode(features[list(indices)])

    def detect_languages(self, encoder_output: Any, among: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """The most likely language of each encoded window, restricted to `among` when given."""
        if not self.multilingual:
            return [("en", 1.0)] * int(encoder_output.shape[0])
        detected = []
        for scores in self.language_scores(encoder_output):
            allowed = [item for item in scores if item[0] in among] or scores
            detected.append(max(allowed, key=lambda item: item[1]))
        return detected

    def language_scores(self, encoder_output: Any) -> list[list[tuple[str, float]]]:
        """Every language's probability for each encoded window (multilingual models), for
        core/language_choice.py to weigh with the conversation's hints."""
        return [[(token[2:-2], float(p)) for token, p in ranked]  # "<|en|>" -> "en"
                for ranked in self._model.model.detect_language(encoder_output)]

    def languages_of(self, audios: Sequence[np.ndarray], among: tuple[str, ...] = ()) -> list[tuple[str, float]]:
        """Each clip's language, as transcribe() would detect it, for a fraction of its cost.

        CTranslate2's encoder takes fewer frames than a whole window, so each clip is encoded at its own
        length plus a second of the window's padding: a 5 s note costs about a sixth of a 30 s window, and
        the language and its probability stay those the whole window gives.
        """
        if not self.multilingual:
            return [("en", 1.0)] * len(audios)
        detected = []
        for scores in self.clip_language_scores(audios):
            allowed = [item for item in scores if item[0] in among] or scores
            detected.append(max(allowed, key=lambda item: item[1]))
        return detected

    def clip_language_scores(self, audios: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        """language_scores() of each clip, encoded at its own length as languages_of() does."""
        scores = []
        for audio in audios:
            features = self.feature_windows([audio], len(audio) / SAMPLE_RATE + 1.0)
            scores += self.language_scores(self.encode(features))
        return scores

    def tokenizer(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(
            self._model.hf_tokenizer, self.multilingual, task=task if self.multilingual else "transcribe",
            language=language if self.multilingual else "en",
        )

    def generate(
        self, encoder_output: Any, tokenizers: Sequence[Any], prompts: Sequence[str | None], *, beam_size: int,
        temperature: float, seconds: float | None = None,
    ) -> list[Generated]:
        """Decode every encoded window in one batched call, with timestamps, as transcribe() decodes one;
        `prompts`: the text each window follows (the vocabulary, and the words before it), or None.

        `seconds`: reduced windows of that length, whose tokens are capped at TOKENS_PER_S a second (far
        above speech, about 5): a decoding stuck in a loop stops there instead of at the model's 448, and
        its compression ratio sends it to the plain path."""
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        model = self._model
        prompts = [
            model.get_prompt(tok, tok.encode(" " + text.strip()) if text else [])
            for tok, text in zip(tokenizers, prompts, strict=True)
        ]
        sampling = {"sampling_temperature": temperature, "sampling_topk": 0} if temperature > 0 else {}
        longest = model.max_length if seconds is None else min(model.max_length, 32 + round(TOKENS_PER_S * seconds))
        results = model.model.generate(
            encoder_output, prompts, beam_size=1 if temperature > 0 else beam_size,
            max_length=longest,
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
                compression_ratio=get_compression_ratio(tok.decode(tokens).strip()), temperature=temperature,
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


def speech_only(audio: np.ndarray, chunks: list[dict[str, int]] | None) -> np.ndarray:
    """The audio with the VAD's silences cut out (`speech_chunks`), as transcribe() decodes and detects on it."""
    return np.concatenate([audio[c["start"] : c["end"]] for c in chunks]) if chunks else audio
