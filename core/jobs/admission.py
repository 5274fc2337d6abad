"""Admission: the limits new work passes before it is accepted, and what they count.

`AdmissionControl` checks, in this order, the queue (work accepted and not yet answered, here and on the
other front ends), the media budget and the rate per person (counted across front ends when they share
Redis, here otherwise); it refuses with Busy. The service asks it after a cached answer was looked for
(a repeat costs nothing) and before the journal is written.

Each count is bounded by what it holds, whatever the traffic: the rate limiter forgets a person as soon
as their window is empty, and the media budget counts bytes, not jobs, so a hundred large files cannot
be held at once just because the queue has room for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..errors import Busy
from ..media import MediaRequest
from ..metrics import Metrics
from ..sentences import BUSY, RATE_LIMITED

MIN_RETRY_S = 60.0
"""A busy answer never asks for less patience than this, whatever the speed estimate says."""


class OtherFrontEnds(Protocol):
    """What front ends sharing Redis count together (core/scaleout/limits.py implements it)."""

    others_active: int
    """Work accepted and not yet answered by the other front ends."""

    async def check_rate(self, platform: str, user_id: str) -> bool:
        """Count one request across front ends; False when that could not be done (Redis down)."""
        ...


class AdmissionControl:
    """The queue, the media budget and the rate per person, for one service."""

    def __init__(self, *, queue_max: int, rate: tuple[int, float] | None, media_bytes: int, metrics: Metrics,
                 wait_s: Callable[[], float]) -> None:
        """`rate`: (requests, window seconds) per person, None for no limit; `wait_s`: the current estimate
        of the wait before new work starts, told to a person who is refused."""
        self.queue_max = queue_max
        self.budget = MediaBudget(media_bytes)
        self.active = 0
        """Accepted and not yet answered (downloading, waiting, running or delivering)."""
        self.shared: OtherFrontEnds | None = None
        self.rate = RateLimiter(*rate) if rate else None
        self._metrics = metrics
        self._wait_s = wait_s

    async def check(self, platform: str, user_id: str, size_bytes: int) -> None:
        """Busy unless the queue and the media budget have room and the person is within the rate."""
        others = self.shared.others_active if self.shared else 0
        if self.active + others >= self.queue_max or not self.budget.has_room(size_bytes):
            # Media waiting in memory is counted in bytes, not jobs: a few large files fill it as well.
            self._metrics.errors.labels("busy").inc()
            raise Busy(max(MIN_RETRY_S, self._wait_s()), reason=BUSY)
        if self.shared is None or not await self.shared.check_rate(platform, user_id):
            self._check_rate(user_id)  # locally too while the shared count cannot be reached

    def admit(self, size_bytes: int) -> Admission:
        """A place for work that passed `check`, counted until it is closed."""
        self.active += 1
        return Admission(self, self.budget.reserve(size_bytes))

    @contextlib.asynccontextmanager
    async def holding(self, request: MediaRequest) -> AsyncIterator[MediaRequest]:
        """Accepted work waits for room in the media budget before it downloads, and holds it until done."""
        hold = await self.budget.acquire(request.size_bytes or 0)
        try:
            yield counted(request, hold)
        finally:
            hold.release()

    def _check_rate(self, user_id: str) -> None:
        if self.rate is None:
            return
        retry_after = self.rate.take(user_id)
        if retry_after is not None:
            self._metrics.errors.labels("rate_limited").inc()
            raise Busy(retry_after, reason=RATE_LIMITED)


class Admission:
    """A place taken before the media is read (an HTTP upload): it counts in the queue, the rate limit
    and the media budget from then on. `close()` gives the place back; transcribe() does it when done."""

    def __init__(self, control: AdmissionControl, hold: MediaHold) -> None:
        self._control, self.hold = control, hold
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._control.active -= 1
            self.hold.release()


def counted(request: MediaRequest, hold: MediaHold) -> MediaRequest:
    """The request whose download resizes `hold` to the bytes it really brought."""
    fetch = request.fetch

    async def fetch_counted(max_bytes: int) -> bytes:
        data = await fetch(max_bytes)
        hold.resize(len(data))
        return data

    return dataclasses.replace(request, fetch=fetch_counted)


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


__all__ = ["Admission", "AdmissionControl", "MediaBudget", "MediaHold", "OtherFrontEnds", "RateLimiter", "counted"]
