"""Making distinct media from the shared recordings (the cache would otherwise answer repeats)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np

from chatscribe.core.media import SAMPLE_RATE, decode_audio


def to_wav(samples: np.ndarray) -> bytes:
    """16-bit WAV at SAMPLE_RATE: mono samples, or frames x channels for several channels."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def variants(data: bytes, count: int, *, seconds: float | None = None) -> list[bytes]:
    """`count` WAV files with the same speech and different bytes (a few ms more leading silence each)."""
    samples = decode_audio(data, max_duration_s=3600).samples
    if seconds is not None:
        samples = samples[: int(seconds * SAMPLE_RATE)]
    return [to_wav(np.concatenate([np.zeros(160 * (i + 1), np.float32), samples])) for i in range(count)]


def pcm16(path: Path, rate: int) -> bytes:
    """A file decoded and resampled to mono 16-bit PCM at `rate`, as a live client sends it."""
    out = bytearray()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                out += bytes(piece.planes[0])[: piece.samples * 2]
    for piece in resampler.resample(None):
        out += bytes(piece.planes[0])[: piece.samples * 2]
    return bytes(out)
