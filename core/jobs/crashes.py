"""Crash set-aside: one file must not keep the service in a crash loop.

A journaled job is marked while its media is in hand (probed, decoded or transcribed). A process that
dies with the mark set (a decoder crash on a hostile file, the kernel's OOM killer) has a crash counted
against the job at the next start (Journal.unfinished). The job then runs unbatched, so no other note
of a batch shares the blame, and after CRASH_LIMIT crashes it is answered with SetAside instead of being
tried again. The scale-out worker applies the same limit to its attempts.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SetAside
from ..media import probe_duration

CRASH_LIMIT = 3

Mark = Callable[[str, bool], None]
"""Journal.media_in_hand: (job id, in hand) written in the worker thread."""


def set_aside(crashes: int) -> SetAside | None:
    """The answer for a job its media brought the process down `crashes` times; None: try it again."""
    return SetAside(crashes) if crashes >= CRASH_LIMIT else None


def run_unbatched(crashes: int) -> bool:
    """A job that was in hand when a process died runs alone: were it to crash again, it alone is blamed."""
    return crashes > 0


class InHand:
    """The mark of one job's media being in hand; a no-op for work that is not journaled."""

    def __init__(self, mark: Mark, job_id: str | None) -> None:
        self._mark, self._job_id = mark, job_id

    def __call__(self, in_hand: bool) -> None:
        if self._job_id is not None:
            self._mark(self._job_id, in_hand)

    def probe(self, data: bytes) -> float | None:
        """The media's duration, read with the mark set (FFmpeg opens the file here first)."""
        self(True)
        try:
            return probe_duration(data)
        finally:  # not reached when probing kills the process: that crash counts against this job
            self(False)


__all__ = ["CRASH_LIMIT", "InHand", "Mark", "run_unbatched", "set_aside"]
