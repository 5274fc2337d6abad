"""Engines: 16 kHz audio in, a raw Transcript out, and the batching that lets short notes share the model.

base.py            the Engine protocol and the capabilities an engine declares (`batching`)
faster_whisper.py  the default engine (CTranslate2), and the device choice
decoding_steps.py  faster-whisper's decoding taken apart, for batching
batching.py        cross-request batching: which strategy, and the batch loop (packing.py lays windows out)
transformers_engine.py, convert.py   the PyTorch engine for CUDA-13-only hosts, from the same weights
models.py          where a model comes from (folder, data dir, bundled package, hub)
checkpoints.py     transformers checkpoints and LoRA adapters: merged and converted once into the data dir
stored.py          the models the data dir holds (`chatscribe models`), and removing one

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
from .checkpoints import Stage
from .faster_whisper import FasterWhisperEngine, choose_device
from .models import BUNDLED, ResolvedModel, for_faster_whisper, resolve_model
from .stored import StoredModel, remove_stored, stored_models
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
    "Stage",
    "StoredModel",
    "TransformersWhisperEngine",
    "WholeBatches",
    "WindowBatchingEngine",
    "batches_inputs",
    "batches_windows",
    "choose_device",
    "for_faster_whisper",
    "make_batcher",
    "remove_stored",
    "resolve_model",
    "stored_models",
]
