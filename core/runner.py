"""Runners do the transcription work the service hands them: the seam for scale-out.

`LocalRunner` runs it in this process (fair scheduler -> decode -> engine -> quality pass) on daemon
threads; a distributed runner sends the same `Work` to transcription workers instead. The service
keeps everything else (cache, journal, limits, delivery) whichever runner it has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .engine import Engine
from .jobs import ProgressUpdate
from .media import decode_audio
from .metrics import Metrics
from .options import TranscribeOptions
from .quality import validate
from .scheduler import FairScheduler
from .speed import SpeedEstimate
from .threads import run_in_daemon_thread
from .transcript import Transcript

Notify = Callable[[ProgressUpdate], None]


@dataclass(frozen=True, slots=True)
class Work:
    chat_id: str
    """The unit of fairness."""
    data: bytes
    duration_s: float
    """Declared or estimated length, for ordering and estimates."""
    options: TranscribeOptions


class Runner(Protocol):
    model_id: str
    """Identifies weights and decoding settings: part of every cache key."""

    async def run(self, work: Work, notify: Notify | None = None) -> Transcript:
        """Transcribe `work` in its fair turn; raises ChatscribeError for bad media."""
        ...

    def backlog(self) -> tuple[int, float]:
        """(jobs waiting, seconds of audio waiting)."""
        ...

    def estimate_wait_s(self) -> float:
        """Seconds until a job submitted now would start, from measured speed."""
        ...

    def close(self) -> None:
        """Start no more work; waiting runs raise ShuttingDown."""
        ...


class LocalRunner:
    def __init__(self, engine: Engine, *, slots: int, max_duration_s: float, metrics: Metrics) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.scheduler = FairScheduler(slots)
        self.speed = SpeedEstimate()
        self.max_duration_s = max_duration_s
        self.metrics = metrics

    def backlog(self) -> tuple[int, float]:
        return self.scheduler.waiting, self.scheduler.waiting_audio_s()

    def estimate_wait_s(self) -> float:
        return self.speed.seconds_for(self.scheduler.waiting_audio_s(), self.scheduler.waiting) / self.scheduler.slots

    def close(self) -> None:
        self.scheduler.close()

    async def run(self, work: Work, notify: Notify | None = None) -> Transcript:
        loop = asyncio.get_running_loop()
        estimate = work.duration_s

        def on_position(position: int) -> None:
            assert notify is not None
            ahead = self.speed.seconds_for(self.scheduler.waiting_audio_s(), position) / self.scheduler.slots
            notify(ProgressUpdate("queued", position=position, eta_s=ahead + self.speed.seconds_for(estimate, 1)))

        def on_fraction(fraction: float) -> None:  # called from the worker thread
            assert notify is not None
            eta = self.speed.seconds_for(estimate * (1 - fraction), 0)
            loop.call_soon_threadsafe(notify, ProgressUpdate("transcribing", fraction=fraction, eta_s=eta))

        async with self.scheduler.turn(work.chat_id, estimate, on_position if notify else None):
            if notify:
                notify(ProgressUpdate("transcribing", fraction=0.0, eta_s=self.speed.seconds_for(estimate, 1)))
            started = time.monotonic()
            transcript = await run_in_daemon_thread(self._work, work, on_fraction if notify else None)
        self.speed.observe(transcript.duration_s, time.monotonic() - started)
        self.metrics.transcriptions.inc()
        self.metrics.audio_seconds.observe(transcript.duration_s)
        self.metrics.realtime_factor.set(self.speed.rtf)
        return transcript

    def _work(self, work: Work, on_fraction: Callable[[float], None] | None) -> Transcript:
        decoded = decode_audio(work.data, max_duration_s=self.max_duration_s)
        raw = self.engine.transcribe(decoded.samples, work.options, on_fraction)
        checked = validate(raw, decoded.samples)
        return dataclasses.replace(checked, truncated=decoded.truncated)


def default_slots(engine: Engine) -> int:
    return 2 if engine.device.device == "cuda" else 1
