"""A Whisper engine on PyTorch + transformers, for GPU hosts where CTranslate2 cannot run (CUDA 13 only).

Weights come from the same CTranslate2 model folders (converted once, see convert.py), so no hub is
needed; a transformers checkpoint (a fine-tune, a merged LoRA adapter) is loaded as it is.
Long audio is cut at pauses (Silero VAD) into windows of at most 30 s, and all windows of all
inputs go through the model in batches: the way to keep a large GPU busy. fp16 with SDPA attention on
CUDA; float32 on CPU, where it is only used for tests and conversions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CannotTranslate
from ..media import SAMPLE_RATE
from ..options import TranscribeOptions
from ..transcript import Segment, Transcript
from .base import Batching, DeviceChoice, Progress, SegmentSink
from .convert import convert
from .models import ResolvedModel, models_dir

WINDOW_S = 30
_TIME_STEP = 0.02  # seconds per timestamp token


class TransformersWhisperEngine:
    batching: Batching = "inputs"

    def __init__(self, model: ResolvedModel, data_dir: Path, *, device: str = "cuda", batch_size: int = 64,
                 reason: str = "") -> None:
        import tokenizers
        import torch
        from faster_whisper.feature_extractor import FeatureExtractor
        from transformers import WhisperForConditionalGeneration

        folder = model.checkpoint or convert(
            model.path, models_dir(data_dir) / f"{model.name.replace('/', '--')}-transformers"
        )
        dtype = torch.float16 if device == "cuda" else torch.float32
        self._torch = torch
        model_on_cpu = WhisperForConditionalGeneration.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
        self._model = model_on_cpu.to(device).eval()  # type: ignore[arg-type]
        self._tokenizer = _tokenizer(tokenizers, folder)
        self._features = FeatureExtractor(feature_size=self._model.config.num_mel_bins)
        self._dtype = dtype
        self._device_name = device
        self.batch_size = batch_size
        generation = self._model.generation_config
        self.multilingual = bool(getattr(generation, "is_multilingual", False))
        self._lang_codes = {v: k.strip("<|>") for k, v in getattr(generation, "lang_to_id", {}).items()}
        self._timestamp_begin = int(generation.no_timestamps_token_id) + 1
        self._eot = int(self._model.config.eos_token_id)
        precision = "float16" if device == "cuda" else "float32"
        self.device = DeviceChoice(device, precision, reason or f"transformers on {device}")
        self.model_id = f"{model.name}:transformers-{precision}"

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        transcript = self.transcribe_batch([audio], options)[0]
        if on_segment:  # the note is decoded in one go: its segments are all known only now
            for segment in transcript.segments:
                on_segment(segment)
        if progress:
            progress(1.0)
        return transcript

    def transcribe_part(self, audio: np.ndarray, options: TranscribeOptions, prompt: str) -> Transcript:
        """A stretch the first pass left without words, decoded with the neighbouring text as vocabulary."""
        vocabulary = " ".join(part for part in (options.vocabulary, prompt) if part) or None
        return self.transcribe(audio, dataclasses.replace(options, vocabulary=vocabulary, word_timestamps=True))

    def transcribe_batch(self, audios: Sequence[np.ndarray], options: TranscribeOptions) -> list[Transcript]:
        """Every window of every input through the model in batches; one Transcript per input."""
        if options.task == "translate" and not self.multilingual:
            raise CannotTranslate(self.model_id)  # it would only transcribe
        windows = [(i, start, end) for i, audio in enumerate(audios) for start, end in speech_windows(audio)]
        languages = self._languages(audios, windows, options)
        segments: list[list[Segment]] = [[] for _ in audios]
        for first in range(0, len(windows), self.batch_size):
            chunk = windows[first : first + self.batch_size]
            features = np.stack([self._window_features(audios[i][s:e]) for i, s, e in chunk])
            tokens = self._generate(features, [languages[i] for i, _, _ in chunk], options)
            for (i, start, _), sequence in zip(chunk, tokens, strict=True):
                segments[i].extend(self._segments(sequence, start / SAMPLE_RATE))
        return [
            Transcript(
                segments=tuple(found), language=language[0], language_probability=language[1],
                duration_s=len(audio) / SAMPLE_RATE, model=self.model_id, task=options.task,
            )
            for found, language, audio in zip(
                segments, (found or ("en", 1.0) for found in languages), audios, strict=True
            )
        ]

    def _window_features(self, audio: np.ndarray) -> np.ndarray:
        frames = WINDOW_S * SAMPLE_RATE // 160
        features = self._features(audio)[:, :frames]
        return np.pad(features, ((0, 0), (0, frames - features.shape[1]))).astype(np.float32)

    def _languages(
        self, audios: Sequence[np.ndarray], windows: list[tuple[int, int, int]], options: TranscribeOptions
    ) -> list[tuple[str, float] | None]:
        if not self.multilingual:
            return [("en", 1.0)] * len(audios)
        if options.language:
            return [(options.language, 1.0)] * len(audios)
        firsts = {i: (s, e) for i, s, e in reversed(windows)}  # each input's first speech window
        found: list[tuple[str, float] | None] = [None] * len(audios)
        order = sorted(firsts)
        if not order:
            return found
        features = np.stack([self._window_features(audios[i][slice(*firsts[i])]) for i in order])
        with self._torch.no_grad():
            encoded = self._model.model.encoder(self._tensor(features)).last_hidden_state
            start = self._torch.full((len(order), 1), self._model.config.decoder_start_token_id,
                                     device=self._device_name)
            logits = self._model(encoder_outputs=(encoded,), decoder_input_ids=start).logits[:, -1].float()
        ids = list(self._lang_codes)
        allowed = [t for t in ids if not options.expected_languages
                   or self._lang_codes[t] in options.expected_languages] or ids
        probs = logits[:, allowed].softmax(-1).cpu().numpy()
        for row, i in enumerate(order):
            best = int(probs[row].argmax())
            found[i] = (self._lang_codes[allowed[best]], float(probs[row][best]))
        return found

    def _generate(self, features: np.ndarray, languages: list[tuple[str, float] | None],
                  options: TranscribeOptions) -> list[list[int]]:
        kwargs: dict[str, object] = {"return_timestamps": True}
        if self.multilingual:
            kwargs["task"] = options.task
            kwargs["language"] = [lang[0] if lang else "en" for lang in languages]
        if options.vocabulary:
            kwargs["prompt_ids"] = self._torch.tensor(
                self._tokenizer.encode(" " + options.vocabulary.strip(), add_special_tokens=False).ids,
                device=self._device_name,
            )
        with self._torch.no_grad():
            output = self._model.generate(self._tensor(features), **kwargs)
        sequences = output if isinstance(output, self._torch.Tensor) else output.sequences
        return [list(row) for row in sequences.tolist()]

    def _tensor(self, features: np.ndarray) -> Any:
        return self._torch.from_numpy(features).to(self._device_name, dtype=self._dtype)

    def _segments(self, tokens: list[int], offset_s: float) -> list[Segment]:
        """Text between pairs of timestamp tokens becomes one segment, shifted to its window's place."""
        found: list[Segment] = []
        start: float | None = None
        text: list[int] = []
        for token in tokens:
            if token == self._eot:
                break
            if token >= self._timestamp_begin:
                time = (token - self._timestamp_begin) * _TIME_STEP
                if start is None:
                    start = time
                elif text:
                    found.append(self._segment(text, offset_s + start, offset_s + time))
                    text, start = [], None
                else:
                    start = time
            elif token < self._eot:
                text.append(token)
        if text:  # a window that ran out without its closing timestamp
            found.append(self._segment(text, offset_s + (start or 0.0), offset_s + WINDOW_S))
        return found

    def _segment(self, tokens: list[int], start: float, end: float) -> Segment:
        return Segment(start=round(start, 3), end=round(end, 3), text=self._tokenizer.decode(tokens))


def _tokenizer(tokenizers: Any, folder: Path) -> Any:
    for name in ("tokenizer.json", "ct2-tokenizer.json"):
        if (folder / name).is_file():
            return tokenizers.Tokenizer.from_file(str(folder / name))
    from transformers import AutoTokenizer  # a checkpoint with only the slow tokenizer's vocab.json

    return AutoTokenizer.from_pretrained(folder).backend_tokenizer


def speech_windows(audio: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges of at most 30 s that cover the speech, cut at pauses."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    limit = WINDOW_S * SAMPLE_RATE
    spans = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=WINDOW_S - 1))
    windows: list[tuple[int, int]] = []
    for span in spans:
        start, end = int(span["start"]), int(span["end"])
        if windows and end - windows[-1][0] <= limit:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, min(end, start + limit)))
    return windows
