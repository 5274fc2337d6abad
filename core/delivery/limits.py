"""What a platform tolerates: its message length, and how often a message may be edited.

`Throttle` keeps those edit rates for one platform, counted per place (a chat, a channel), so that a
status message is edited calmly however often the runner reports progress.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    message_units: int
    """The longest message, in `measure` units (Telegram counts UTF-16 units, Discord and Slack characters)."""
    measure: Callable[[str], int] = len
    edit_interval_s: float = 3.0
    """At most one status edit per place in this time."""
    edits_per_window: int | None = None
    """At most this many edits per place in `window_s` (Discord: 5 per 5 s), the final answer's included."""
    window_s: float = 5.0
    typing_every_s: float | None = None
    """Repeat the platform's "typing…" indicator this often until the answer; None: it has none."""
    draft_lasts_s: float | None = None
    """How long the platform shows a draft (an ephemeral live preview) after its last update; None: for
    good, or the platform has none. The courier shows it again before then."""


class Throttle:
    """Edit times per place; `clock` is monotonic seconds (tests may pass their own)."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._last: dict[str, float] = {}
        self._recent: dict[str, deque[float]] = {}

    def ready(self, place: str) -> bool:
        """Whether a status edit may be made there now (the interval and the window both allow it)."""
        return self.wait_s(place) == 0.0

    def wait_s(self, place: str) -> float:
        """Seconds until `ready(place)` may be true (0.0: now)."""
        now = self._clock()
        interval = self._limits.edit_interval_s - (now - self._last.get(place, float("-inf")))
        return max(0.0, interval, self._window_wait(place, now))

    def took(self, place: str) -> None:
        now = self._clock()
        self._last[place] = now
        if self._limits.edits_per_window is not None:
            self._recent.setdefault(place, deque()).append(now)
        if len(self._last) > 10_000:  # places come and go: forget the oldest rather than grow forever
            oldest = next(iter(self._last))
            self._last.pop(oldest)
            self._recent.pop(oldest, None)

    async def window(self, place: str) -> None:
        """Wait until the window allows one more edit there (the final answer: it must not be skipped)."""
        wait = self._window_wait(place, self._clock())
        if wait > 0:  # a rate to keep, not a synchronisation: the oldest edit leaves the window by then
            await asyncio.sleep(wait)

    def _window_wait(self, place: str, now: float) -> float:
        allowed = self._limits.edits_per_window
        recent = self._recent.get(place)
        if allowed is None or not recent:
            return 0.0
        while recent and now - recent[0] >= self._limits.window_s:
            recent.popleft()
        return 0.0 if len(recent) < allowed else self._limits.window_s - (now - recent[0])
