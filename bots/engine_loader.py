"""Builds the one engine of a process from the settings (slow: run it off the event loop).

CHATSCRIBE_ENGINE=auto: faster-whisper when CTranslate2 can use the GPU; else transformers when PyTorch
sees CUDA (hosts with only CUDA 13, where CTranslate2's cuBLAS 12 is missing); else faster-whisper on CPU.
A transformers checkpoint or LoRA adapter is merged and converted here, once, before any bot connects.
"""

from __future__ import annotations

import logging

from chatscribe.core import ConfigError, Settings
from chatscribe.core.engines import (
    Engine,
    FasterWhisperEngine,
    ResolvedModel,
    Stage,
    choose_device,
    for_faster_whisper,
    resolve_model,
)

log = logging.getLogger(__name__)


def load_engine(settings: Settings, *, stage: Stage | None = None) -> Engine:
    """`stage` hears "converting model" while a checkpoint is converted (/readyz says so meanwhile)."""
    return build_engine(settings, prepare_model(settings, stage=stage))


def prepare_model(settings: Settings, *, stage: Stage | None = None) -> ResolvedModel:
    """The model in the layout the chosen engine reads: a checkpoint converted for faster-whisper, once."""
    model = resolve_model(settings.model, settings.data_dir, base_model=settings.base_model, stage=stage)
    # A CTranslate2 model (the usual case) needs nothing more: no engine pick or CUDA probe here, once more
    # than build_engine's own, at every start.
    if model.layout == "ctranslate2" or pick_engine(settings)[0] == "transformers":
        return model
    device = choose_device(settings.device, settings.compute_type)
    return for_faster_whisper(model, settings.data_dir, compute_type=device.compute_type, stage=stage)


def build_engine(settings: Settings, model: ResolvedModel) -> Engine:
    kind, reason = pick_engine(settings)
    if kind == "transformers":
        from chatscribe.core.engines import TransformersWhisperEngine

        device = "cpu" if settings.device == "cpu" else "cuda" if _torch_cuda() else "cpu"
        return TransformersWhisperEngine(model, settings.data_dir, device=device, reason=reason)
    engine = FasterWhisperEngine(
        model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        workers=settings.workers or 1,
        beam_size=settings.beam_size,
        vad=settings.vad,
    )
    if settings.engine == "auto" and engine.device.device == "cpu" and settings.device != "cpu" and _torch_cuda():
        log.info("CTranslate2 cannot use the GPU (%s); switching to the transformers engine", engine.device.reason)
        from chatscribe.core.engines import TransformersWhisperEngine

        return TransformersWhisperEngine(model, settings.data_dir, device="cuda",
                                         reason=f"{engine.device.reason}; PyTorch sees CUDA")
    return engine


def pick_engine(settings: Settings) -> tuple[str, str]:
    """("faster-whisper" | "transformers", why) before anything is loaded."""
    if settings.engine == "transformers":
        if not _torch_available():
            raise ConfigError(
                "CHATSCRIBE_ENGINE=transformers needs PyTorch and transformers: "
                "pip install 'chatscribe[transformers]'."
            )
        return "transformers", "CHATSCRIBE_ENGINE=transformers"
    if settings.engine == "faster-whisper" or settings.device == "cpu":
        return "faster-whisper", "CHATSCRIBE_ENGINE=faster-whisper" if settings.engine != "auto" else "CPU"
    device = choose_device(settings.device, settings.compute_type)
    if device.device == "cuda":
        return "faster-whisper", device.reason
    if _torch_cuda():
        return "transformers", f"{device.reason}, but PyTorch sees CUDA"
    return "faster-whisper", f"{device.reason} (and no PyTorch with CUDA)"


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_cuda() -> bool:
    if not _torch_available():
        return False
    import torch

    return bool(torch.cuda.is_available())
