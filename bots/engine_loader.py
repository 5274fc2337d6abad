"""Builds the one engine of a process from the settings (slow: run it off the event loop)."""

from __future__ import annotations

from chatscribe.core.config import Settings
from chatscribe.core.engine import Engine, FasterWhisperEngine
from chatscribe.core.models import resolve_model


def load_engine(settings: Settings) -> Engine:
    model = resolve_model(settings.model, settings.data_dir)
    return FasterWhisperEngine(
        model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        workers=settings.workers or 1,
        beam_size=settings.beam_size,
        vad=settings.vad,
    )
