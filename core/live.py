"""Live audio cut into utterances: PCM16 arrives in small pieces, speech is found with Silero VAD (the
model faster-whisper ships for its vad_filter), and each utterance comes out as a WAV the service can
transcribe like any file, so the model, the quality pass, the limits and the metrics are the same.

Nothing here knows about WebSockets or any wire protocol; bots/realtime.py speaks OpenAI's.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "INPUT_RATES",
    "LiveAudio",
    "SpeechStarted",
    "SpeechStopped",
    "VadSettings",
    "pcm16_wav",
    "silero_probabilities",
]

INPUT_RATES = (24_000, 16_000)
"""PCM rates a live session takes: OpenAI's 24 kHz, and Whisper's own 16 kHz."""

VAD_RATE = 16_000
FRAME = 512
"""Silero's window at 16 kHz (32 ms)."""

MAX_UTTERANCE_S = 120.0
"""Speech that goes on this long is committed anyway, so memory and the wait for words stay bounded."""

MIN_SPEECH_FRAMES = 7
"""About 250 ms of frames above the threshold (Silero's min_speech_duration_ms) before speech counts."""

SpeechProbabilities = Callable[[np.ndarray], np.ndarray]
"""float32 16 kHz frames (a multiple of FRAME samples) -> one speech probability per frame."""


@dataclass(frozen=True, slots=True)
class VadSettings:
    """OpenAI's server_vad knobs, with its defaults."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int
    """From the start of the session's audio, including the prefix padding."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int
    audio: bytes
    """The utterance as PCM16 at the input rate: prefix padding, speech and the silence that ended it."""


def silero_probabilities() -> SpeechProbabilities:
    """faster-whisper's Silero model, loaded once per process (it caches it)."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()

    def probabilities(frames: np.ndarray) -> np.ndarray:
        return np.asarray(model(frames), dtype=np.float32).reshape(-1)

    return probabilities


def pcm16_wav(pcm: bytes, rate: int) -> bytes:
    """A mono PCM16 WAV file holding `pcm`."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


class LiveAudio:
    """The input buffer of one live session. `vad=None`: the client commits; else speech is found here.

    Blocking (the VAD runs inside feed): call it off the event loop."""

    def __init__(self, *, rate: int, vad: VadSettings | None, probabilities: SpeechProbabilities | None = None,
                 max_buffer_s: float = MAX_UTTERANCE_S) -> None:
        if rate not in INPUT_RATES:
            raise ValueError(f"rate must be one of {INPUT_RATES}")
        self.rate = rate
        self.vad = vad
        self._probabilities = probabilities
        self._max_bytes = int(max_buffer_s * rate) * 2
        self._buffer = bytearray()  # PCM16 at `rate` since the last commit (or trimmed to the padding)
        self._buffer_start = 0  # session sample index of _buffer[0]
        self._received = 0  # samples received in the whole session
        self._pending16 = np.zeros(0, dtype=np.float32)  # 16 kHz samples not yet a whole frame
        self._previous_frame = np.zeros(FRAME, dtype=np.float32)
        self._frames_seen = 0
        self._speech_start: int | None = None  # session sample where the current utterance starts
        self._silent_frames = 0
        self._voiced_frames = 0
        self._announced = False  # SpeechStarted sent for the current utterance

    @property
    def buffered_ms(self) -> int:
        return len(self._buffer) // 2 * 1000 // self.rate

    @property
    def in_speech(self) -> bool:
        return self._announced

    @property
    def full(self) -> bool:
        return len(self._buffer) >= self._max_bytes

    def feed(self, pcm: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Take more audio (an even number of bytes); with VAD, what the speech did in it."""
        if len(pcm) % 2:
            raise ValueError("PCM16 audio has an even number of bytes")
        self._buffer += pcm
        self._received += len(pcm) // 2
        if self.vad is None:
            return []
        events = self._detect(_to_16k(pcm, self.rate))
        if self.full and self._announced:
            events.append(self._stop(self._received))
        elif self.full:
            self._speech_start = None
        if self._speech_start is None:
            self._trim_to_padding()
        return events

    def commit(self) -> bytes:
        """Everything buffered, as PCM16; the buffer starts again empty (speech state too)."""
        audio = bytes(self._buffer)
        self._reset_to(self._received)
        return audio

    def clear(self) -> None:
        self._reset_to(self._received)

    # -- VAD ----------------------------------------------------------------------------------------

    def _detect(self, samples16: np.ndarray) -> list[SpeechStarted | SpeechStopped]:
        assert self.vad is not None
        self._pending16 = np.concatenate([self._pending16, samples16])
        whole = len(self._pending16) // FRAME * FRAME
        if not whole:
            return []
        frames, self._pending16 = self._pending16[:whole], self._pending16[whole:]
        if self._probabilities is None:
            self._probabilities = silero_probabilities()
        # The frame before comes along so that the first new frame gets its real context; its own
        # probability is dropped.
        probs = self._probabilities(np.concatenate([self._previous_frame, frames]))[1:]
        self._previous_frame = frames[-FRAME:]
        events: list[SpeechStarted | SpeechStopped] = []
        silence_frames = max(1, self.vad.silence_duration_ms * VAD_RATE // 1000 // FRAME)
        # Silero's own hysteresis: speech ends when the probability falls clearly below the threshold.
        low = max(self.vad.threshold - 0.15, 0.01)
        for prob in probs:
            frame_end = self._at_rate((self._frames_seen + 1) * FRAME)
            frame_start = self._at_rate(self._frames_seen * FRAME)
            self._frames_seen += 1
            if self._speech_start is None:
                if prob >= self.vad.threshold:
                    padding = self.vad.prefix_padding_ms * self.rate // 1000
                    self._speech_start = max(self._buffer_start, frame_start - padding)
                    self._silent_frames, self._voiced_frames, self._announced = 0, 1, False
            elif prob < low:
                self._silent_frames += 1
                if self._silent_frames >= silence_frames:
                    if self._announced:
                        events.append(self._stop(frame_end))
                    else:  # a click or a breath, not speech: forgotten without a word to the client
                        self._speech_start = None
                    continue
            else:
                self._silent_frames = 0
                self._voiced_frames += prob >= self.vad.threshold
            if self._speech_start is not None and not self._announced and self._voiced_frames >= MIN_SPEECH_FRAMES:
                self._announced = True
                events.append(SpeechStarted(self._ms(self._speech_start)))
        return events

    def _stop(self, end: int) -> SpeechStopped:
        assert self._speech_start is not None
        end = min(end, self._received)
        first = (self._speech_start - self._buffer_start) * 2
        last = (end - self._buffer_start) * 2
        audio = bytes(self._buffer[first:last])
        del self._buffer[:last]
        self._buffer_start = end
        self._speech_start = None
        self._silent_frames = 0
        self._announced = False
        return SpeechStopped(self._ms(end), audio)

    def _trim_to_padding(self) -> None:
        assert self.vad is not None
        keep = (self.vad.prefix_padding_ms * self.rate // 1000 + FRAME * self.rate // VAD_RATE) * 2
        drop = len(self._buffer) - keep
        if drop > 0:
            drop -= drop % 2
            del self._buffer[:drop]
            self._buffer_start += drop // 2

    def _reset_to(self, sample: int) -> None:
        self._buffer.clear()
        self._buffer_start = sample
        self._speech_start = None
        self._silent_frames = 0
        self._announced = False

    def _at_rate(self, sample16: int) -> int:
        return sample16 * self.rate // VAD_RATE

    def _ms(self, sample: int) -> int:
        return sample * 1000 // self.rate


def _to_16k(pcm: bytes, rate: int) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if rate == VAD_RATE:
        return samples
    # 24 kHz -> 16 kHz for the VAD only (the transcript is made from the original samples): pairs of
    # three samples become two by linear interpolation, exact when pieces are multiples of 3 samples,
    # and close enough for a speech detector when they are not.
    count = len(samples) * VAD_RATE // rate
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    positions = np.arange(count, dtype=np.float64) * rate / VAD_RATE
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
