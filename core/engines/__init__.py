"""Engines: 16 kHz audio in, a raw Transcript out, and the batching that lets short notes share the model.

base.py            the Engine protocol and the capabilities an engine declares (`batching`)
faster_whisper.py  the default engine (CTranslate2), and the device choice
decoding_steps.py  faster-whisper's decoding taken apart, for batching
batching.py        cross-request batching: which strategy, and the batch loop (packing.py lays windows out)
transformers_engine.py, convert.py   the PyTorch engine for CUDA-13-only hosts, from the same weights
models.py          where a model comes from (folder, data dir, bundled package, hub)

Nothing here imports torch or transformers until a TransformersWhisperEngine is built.
"""

from .base import (
    Batching,
    DeviceChoice,
    Engine,
    InputBatchingEngine,
    Progress,
    WindowBatchingEngine,
    batches_inputs,
    batches_windows,
)
from .batching import MAX_NOTE_S, Batcher, BatchingMode, Clip, WholeBatches, make_batcher
from .faster_whisper import FasterWhisperEngine, choose_device
from .models import BUNDLED, ResolvedModel, resolve_model
from .transformers_engine import TransformersWhisperEngine

__all__ = [
    "BUNDLED",
    "MAX_NOTE_S",
    "Batcher",
    "Batching",
    "BatchingMode",
    "Clip",
    "DeviceChoice",
    "Engine",
    "FasterWhisperEngine",
    "InputBatchingEngine",
    "Progress",
    "ResolvedModel",
    "TransformersWhisperEngine",
    "WholeBatches",
    "WindowBatchingEngine",
    "batches_inputs",
    "batches_windows",
    "choose_device",
    "make_batcher",
    "resolve_model",
]
