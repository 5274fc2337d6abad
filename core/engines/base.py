"""What every engine offers, and the capabilities it declares besides.

An engine turns 16 kHz mono float32 audio into a raw `Transcript` (the quality pass and the coverage check
come after it). One instance per process, shared by every bot. Each engine says in `batching` how notes
waiting together may share its work, and the runner reads that declaration (core/engines/batching.py,
`make_batcher`) instead of looking for methods:

- "windows": the engine hands out the steps of Whisper's decoding (`steps`, core/engines/decoding_steps.py),
  which the batcher composes into shared or batched 30 s windows (FasterWhisperEngine);
- "inputs": the engine batches whole inputs by itself (`transcribe_batch`; TransformersWhisperEngine);
- "none": one note per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeGuard

import numpy as np

from ..options import TranscribeOptions
from ..transcript import Segment, Transcript

if TYPE_CHECKING:
    from .decoding_steps import DecodingSteps

Progress = Callable[[float], None]
"""Called from the worker thread with the fraction of the audio done (0..1)."""

SegmentSink = Callable[[Segment], None]
"""Called from the worker thread with each raw segment as soon as it is decoded (before the quality pass);
an engine that decodes a note in one go calls it for every segment at the end."""

Batching = Literal["windows", "inputs", "none"]
"""How an engine takes part in cross-request batching (see the module's docstring)."""


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
    batching: Batching
    """Declared by each engine class; `batches_windows` and `batches_inputs` read it."""

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """Blocking; call it from a worker thread. `on_segment` sees each segment as it is decoded."""
        ...

    def transcribe_part(self, audio: np.ndarray, options: TranscribeOptions, prompt: str) -> Transcript:
        """A stretch the first pass left without words (core/coverage.py), decoded again with `prompt`, the
        neighbouring text, so that it is read in context; with word times, by which the check judges it."""
        ...


class WindowBatchingEngine(Engine, Protocol):
    """An engine with batching == "windows"."""

    steps: DecodingSteps
    beam_size: int
    """The beam a note decoded on its own gets (reduced windows keep it)."""

    def transcribe_plain(
        self, audio: np.ndarray, options: TranscribeOptions, progress: Progress | None = None,
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """Whisper's own path (whole 30 s windows, the temperature fallback), without any shortcut: where a
        shortcut's doubtful result goes."""
        ...


class InputBatchingEngine(Engine, Protocol):
    """An engine with batching == "inputs"."""

    def transcribe_batch(self, audios: Sequence[np.ndarray], options: TranscribeOptions) -> list[Transcript]:
        """Every input through the model in batches; one Transcript per input, in order."""
        ...


def batches_windows(engine: Engine) -> TypeGuard[WindowBatchingEngine]:
    return engine.batching == "windows"


def batches_inputs(engine: Engine) -> TypeGuard[InputBatchingEngine]:
    return engine.batching == "inputs"
