"""What admission counts besides the queue: requests per person, and bytes of media held in memory.

Both are bounded by what they hold, whatever the traffic: the rate limiter forgets a person as soon as
their window is empty, and the media budget counts bytes, not jobs, so a hundred large files cannot be
held at once just because the queue has room for them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RateLimiter:
    """At most `count` requests per `window_s` per key; keys whose window is empty are dropped."""

    def __init__(self, count: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.window_s = count, window_s
        self._clock = clock
        # Ordered by each key's latest request, so the stale ones are always at the front.
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def take(self, key: str) -> float | None:
        """Count one request for `key`; None when allowed, else the seconds until it would be."""
        now = self._clock()
        self._forget_idle(now)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = deque()
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(recent) >= self.count:
            return recent[0] + self.window_s - now
        recent.append(now)
        self._recent.move_to_end(key)
        return None

    def _forget_idle(self, now: float) -> None:
        while self._recent:
            key, recent = next(iter(self._recent.items()))
            if recent and recent[-1] > now - self.window_s:
                return
            del self._recent[key]


class MediaBudget:
    """Bytes of media held in memory by work in flight.

    New work is refused while the budget is spent (`has_room`); work already accepted waits for room
    before it downloads (`acquire`), so nothing accepted is lost. One file larger than the whole budget
    still runs, alone.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self._freed = asyncio.Event()

    def has_room(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.max_bytes

    def reserve(self, size: int) -> MediaHold:
        """Hold `size` bytes now, room or not (the caller checked has_room, or the bytes are already here)."""
        self.held += size
        return MediaHold(self, size)

    async def acquire(self, size: int) -> MediaHold:
        """Hold `size` bytes once there is room for them."""
        while not self.has_room(size):
            self._freed.clear()
            await self._freed.wait()
        return self.reserve(size)

    def _give_back(self, size: int) -> None:
        self.held = max(0, self.held - size)
        self._freed.set()


class MediaHold:
    """Bytes one piece of work holds in a MediaBudget, resized once the real size is known."""

    def __init__(self, budget: MediaBudget, size: int) -> None:
        self._budget, self.size = budget, size

    def resize(self, size: int) -> None:
        self._budget.held += size - self.size
        if size < self.size:
            self._budget._give_back(0)
        self.size = size

    def release(self) -> None:
        """Idempotent: the bytes go back to the budget once."""
        size, self.size = self.size, 0
        if size:
            self._budget._give_back(size)


__all__ = ["MediaBudget", "MediaHold", "RateLimiter"]
