"""Measured transcription speed, for honest queue estimates."""

from __future__ import annotations


class SpeedEstimate:
    """Exponentially weighted processing seconds per audio second, plus a fixed cost per job."""

    def __init__(self, rtf: float = 0.15, per_job_s: float = 1.0, weight: float = 0.2) -> None:
        self.rtf = rtf
        self.per_job_s = per_job_s
        self._weight = weight

    def observe(self, audio_s: float, elapsed_s: float) -> None:
        if audio_s <= 0:
            return
        # Whisper pays for a 30 s window whatever the clip's length: short clips set the per-job cost.
        if audio_s < 30:
            self.per_job_s += self._weight * (elapsed_s - self.per_job_s)
        else:
            self.rtf += self._weight * (elapsed_s / audio_s - self.rtf)

    def seconds_for(self, audio_s: float, jobs: int) -> float:
        return max(audio_s * self.rtf, jobs * self.per_job_s)
