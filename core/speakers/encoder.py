"""Resemblyzer's pretrained voice encoder, run here: weights from the pinned package, checked, no import of it.

The `resemblyzer` package (Apache-2.0) ships its trained weights (`pretrained.pt`, a GE2E speaker encoder).
Importing the package would load librosa and webrtcvad; only the weights are needed, so the file is found
through the import system without running the package, its sha256 is checked against the one it had when
the version was pinned (as core/engines/models.py checks bundled Whisper files), and the network (3 LSTM
layers over 40 mel bands, a linear layer, ReLU, L2 normalisation) is built here in torch. The mel
spectrogram is computed with numpy the way the package's preprocessing does (25 ms Hann windows every
10 ms, 40 Slaney mel bands, power, not log), on audio at 16 kHz whose volume is raised to -30 dBFS.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..media import SAMPLE_RATE

PACKAGE = "resemblyzer"
PINNED = "resemblyzer==0.1.4"
WEIGHTS_FILE = "pretrained.pt"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"

N_FFT = 400
"""25 ms at 16 kHz."""
HOP = 160
"""10 ms: one mel frame."""
N_MELS = 40
PARTIAL_FRAMES = 160
"""1.6 s: the length of the utterances the encoder was trained on."""
TARGET_DBFS = -30.0
EMBEDDING_SIZE = 256


class EncoderUnavailable(Exception):
    """The speakers extra is not installed, or its weights are not the pinned ones."""


def weights_path() -> Path:
    """The pinned package's weights file, checked; raises EncoderUnavailable saying why not."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(f"{PACKAGE} is not installed (pip install 'chatscribe[speakers]')")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return _checked(path)
    raise EncoderUnavailable(f"{PACKAGE} is installed without {WEIGHTS_FILE}")


@lru_cache(maxsize=4)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    # keyed by size and mtime: a replaced file is hashed again
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path) -> Path:
    stat = path.stat()
    if _digest(path, stat.st_size, stat.st_mtime_ns) != WEIGHTS_SHA256:
        raise EncoderUnavailable(f"{path} is not the file {PINNED} ships (sha256 differs); reinstall {PINNED}")
    return path


def unavailable_reason() -> str | None:
    """None when voices can be told apart here; else what is missing (for `chatscribe doctor`)."""
    try:
        weights_path()
        import torch  # noqa: F401
    except EncoderUnavailable as exc:
        return str(exc)
    except ImportError:
        return "torch is not installed (pip install 'chatscribe[speakers]')"
    return None


# -- mel spectrogram (numpy) -------------------------------------------------------------------------------


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular filters from 0 to 8 kHz, each normalised by its width (Slaney)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) power mel spectrogram, one frame per HOP samples (centred, zero-padded edges)."""
    padded = np.pad(wav.astype(np.float32, copy=False), N_FFT // 2)
    frames = 1 + (len(padded) - N_FFT) // HOP
    if frames <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    strided = np.lib.stride_tricks.as_strided(
        padded, shape=(frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]))
    power = np.abs(np.fft.rfft(strided * _window(), axis=1)) ** 2
    return (power.astype(np.float32) @ mel_filters().T).astype(np.float32)


def normalize_volume(wav: np.ndarray) -> np.ndarray:
    """Raised (never lowered) to TARGET_DBFS, as the encoder's training data was."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 1e-8:
        return wav
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return wav if change_db < 0 else (wav * 10 ** (change_db / 20)).astype(np.float32)


# -- the network ---------------------------------------------------------------------------------------------


class VoiceEncoder:
    """Turns 1.6 s of speech into a 256-dimensional unit vector; voices alike give vectors alike (cosine).

    Thread-safe: one instance serves every worker thread (the forward pass runs under a lock)."""

    def __init__(self, weights: Path | None = None) -> None:
        import torch
        from torch import nn

        path = weights or weights_path()
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        self._torch = torch
        self._lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self._linear = nn.Linear(256, EMBEDDING_SIZE)
        self._lstm.load_state_dict({k[len("lstm."):]: v for k, v in state.items() if k.startswith("lstm.")})
        self._linear.load_state_dict({k[len("linear."):]: v for k, v in state.items() if k.startswith("linear.")})
        self._lstm.eval()
        self._linear.eval()
        self._lock = threading.Lock()

    def embed_mels(self, mels: np.ndarray, batch: int = 64) -> np.ndarray:
        """(n, frames, N_MELS) -> (n, EMBEDDING_SIZE), each row of unit length."""
        out = []
        torch = self._torch
        with self._lock, torch.inference_mode():
            # One thread: the step runs on a transcription worker's thread beside the engine's own threads, and
            # torch's thread pool spinning against them was measured 7x slower than one thread (2 busy cores).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for start in range(0, len(mels), batch):
                    chunk = torch.from_numpy(np.ascontiguousarray(mels[start : start + batch]))
                    _, (hidden, _) = self._lstm(chunk)
                    raw = torch.relu(self._linear(hidden[-1]))
                    out.append((raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy())
            finally:
                torch.set_num_threads(threads)
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)

    def embed_utterance(self, wav: np.ndarray) -> np.ndarray:
        """One voice's vector for a whole clip (a known speaker's reference): its 1.6 s partials, about
        1.3 per second, averaged and normalised."""
        mel = mel_spectrogram(normalize_volume(wav))
        step = int(round(SAMPLE_RATE / 1.3 / HOP))
        starts = list(range(0, max(1, len(mel) - PARTIAL_FRAMES + step + 1), step))
        if len(starts) > 1 and (len(mel) - starts[-1]) < 0.75 * PARTIAL_FRAMES:
            starts.pop()  # a last partial mostly padding says little about the voice
        windows = np.stack([_frames(mel, s) for s in starts])
        mean = self.embed_mels(windows).mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32)


def _frames(mel: np.ndarray, start: int) -> np.ndarray:
    """PARTIAL_FRAMES frames from `start`, zero-padded past the end."""
    window = mel[start : start + PARTIAL_FRAMES]
    if len(window) < PARTIAL_FRAMES:
        window = np.pad(window, ((0, PARTIAL_FRAMES - len(window)), (0, 0)))
    return window


_shared: VoiceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> VoiceEncoder:
    """One encoder per process, loaded on first use (about 0.2 s); raises EncoderUnavailable or ImportError."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VoiceEncoder()
        return _shared
