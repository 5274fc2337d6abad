"""Who transcribes next: a bounded number of slots shared fairly between chats.

Round robin across chats, weighed in media length: a chat's second waiting note counts TURN_S seconds
longer than its first, and a chat served more recently than another waiting one is a turn behind;
shorter media first, with ageing so a long recording is not starved forever.

A slot may take several waiting tickets at once when they carry the same batch key (short notes with
the same options): the same round robin decides which join, so a burst from one chat cannot crowd the
other chats out of a batch. While a burst is arriving, a free slot may wait a short, bounded window for
more notes to join; a lone job never waits.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import ShuttingDown

AGEING = 1.0
"""Seconds of media length forgiven per second waited."""
TURN_S = 15.0
"""What one more note of the same chat ahead in line weighs, in seconds of media length."""

PositionCallback = Callable[[int], None]
Release = Callable[[], None]
"""Frees the slot a batch held; calling it again does nothing."""
OnGrant = Callable[[list["Ticket"], Release], None]
"""Called with the batch (leader first) when it may run; it must call release() when done."""
OnFail = Callable[[BaseException], None]


@dataclass(eq=False)
class Ticket:
    chat_id: str
    duration_s: float
    on_grant: OnGrant
    on_fail: OnFail
    item: Any = None
    """What the owner needs to run it (the runner's pending work)."""
    batch_key: Hashable | None = None
    """Tickets with equal keys may share a slot; None never shares."""
    on_position: PositionCallback | None = None
    enqueued: float = 0.0
    order: int = 0
    burst: bool = False
    """Another ticket arrived within the batch window before this one: more are likely on their way."""

    def urgency(self, now: float) -> float:
        return self.duration_s - AGEING * (now - self.enqueued)


def batch_wait_s(*, now: float, leader: Ticket, size: int, cap: int, window_s: float) -> float:
    """How long a free slot holds `leader`'s batch open for more to join; 0 means start now.

    Only while a burst is arriving (another ticket came just before the leader), the batch is not
    full and the leader has waited less than the window: a lone job or a quiet queue never waits.
    """
    if leader.batch_key is None or size >= cap or window_s <= 0 or not leader.burst:
        return 0.0
    return max(0.0, leader.enqueued + window_s - now)


class FairScheduler:
    def __init__(
        self, slots: int, *, max_batch: int = 1, window_s: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.slots = max(1, slots)
        self.max_batch = max(1, max_batch)
        self.window_s = window_s
        self.running = 0
        self._clock = clock
        self._waiting: list[Ticket] = []
        self._last_served: dict[str, float] = {}
        self._counter = itertools.count()
        self._last_arrival = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def waiting_audio_s(self) -> float:
        return sum(t.duration_s for t in self._waiting)

    def submit(
        self, chat_id: str, duration_s: float, *, on_grant: OnGrant, on_fail: OnFail, item: Any = None,
        batch_key: Hashable | None = None, on_position: PositionCallback | None = None,
    ) -> Ticket:
        """Queue a ticket; `on_grant` runs (maybe right away) when its batch gets a slot."""
        if self._closed:
            raise ShuttingDown()
        now = self._clock()
        ticket = Ticket(
            chat_id, duration_s, on_grant, on_fail, item=item, batch_key=batch_key, on_position=on_position,
            enqueued=now, order=next(self._counter), burst=now - self._last_arrival <= self.window_s,
        )
        self._last_arrival = now
        self._waiting.append(ticket)
        self._dispatch()
        return ticket

    def withdraw(self, ticket: Ticket) -> bool:
        """Take back a ticket whose caller gave up; False when it was already granted."""
        if ticket not in self._waiting:
            return False
        self._waiting.remove(ticket)
        self._announce_positions()
        return True

    @asynccontextmanager
    async def turn(
        self, chat_id: str, duration_s: float, on_position: PositionCallback | None = None
    ) -> AsyncIterator[None]:
        """Wait for this chat's fair turn at a free slot, hold the slot for the body (never batched)."""
        granted: asyncio.Future[Release] = asyncio.get_running_loop().create_future()

        def on_grant(_: list[Ticket], release: Release) -> None:
            if granted.done():
                release()
            else:
                granted.set_result(release)

        def on_fail(exc: BaseException) -> None:
            if not granted.done():
                granted.set_exception(exc)

        ticket = self.submit(chat_id, duration_s, on_grant=on_grant, on_fail=on_fail, on_position=on_position)
        try:
            release = await granted
        except BaseException:
            self.withdraw(ticket)
            if granted.done() and not granted.cancelled() and granted.exception() is None:
                granted.result()()
            raise
        try:
            yield
        finally:
            release()

    def close(self) -> None:
        """Grant no more turns; everyone still waiting gets ShuttingDown."""
        self._closed = True
        self._cancel_timer()
        waiting, self._waiting = self._waiting, []
        for ticket in waiting:
            ticket.on_fail(ShuttingDown())

    def _release(self) -> None:
        self.running -= 1
        self._dispatch()

    def _releaser(self) -> Release:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release()

        return release

    def _dispatch(self) -> None:
        self._cancel_timer()
        granted = False
        while self.running < self.slots and self._waiting and not self._closed:
            now = self._clock()
            batch = self._gather(now)
            wait = batch_wait_s(now=now, leader=batch[0], size=len(batch), cap=self.max_batch,
                                window_s=self.window_s)
            if wait > 0:
                self._timer = asyncio.get_running_loop().call_later(wait, self._dispatch)
                break
            for ticket in batch:
                self._waiting.remove(ticket)
                self._last_served[ticket.chat_id] = next(self._counter)
            self.running += 1
            granted = True
            batch[0].on_grant(batch, self._releaser())
        if granted or self._waiting:
            self._announce_positions()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _gather(self, now: float) -> list[Ticket]:
        """The next fair ticket, joined by the compatible tickets the round robin would serve next."""
        leader = self._pick(self._waiting, self._last_served, now)
        if leader.batch_key is None or self.max_batch == 1:
            return [leader]
        pool = [t for t in self._waiting if t is not leader and t.batch_key == leader.batch_key]
        served = dict(self._last_served)
        counter = itertools.count(max(served.values(), default=0) + 1)
        served[leader.chat_id] = next(counter)
        batch = [leader]
        while pool and len(batch) < self.max_batch:
            ticket = self._pick(pool, served, now)
            pool.remove(ticket)
            served[ticket.chat_id] = next(counter)
            batch.append(ticket)
        return batch

    @staticmethod
    def _pick(waiting: list[Ticket], last_served: dict[str, float], now: float) -> Ticket:
        """Round robin between chats, expressed in media length, so that short notes go first.

        A chat's waiting notes are ranked shortest first (with ageing); each rank counts TURN_S seconds
        more, and so does having been served more recently than the waiting chat served longest ago.
        Notes of equal length are therefore served chat by chat, while one chat's burst of long
        recordings waits behind everyone's short notes.
        """
        def served(chat_id: str) -> float:
            return last_served.get(chat_id, -math.inf)

        longest_ago = min(served(t.chat_id) for t in waiting)
        ranks: dict[str, int] = {}
        scores: dict[int, float] = {}
        for ticket in sorted(waiting, key=lambda t: (t.urgency(now), t.order)):
            rank = ranks.get(ticket.chat_id, int(served(ticket.chat_id) > longest_ago))
            ranks[ticket.chat_id] = rank + 1
            scores[id(ticket)] = ticket.urgency(now) + TURN_S * rank
        return min(waiting, key=lambda t: (scores[id(t)], served(t.chat_id), t.order))

    def _order(self) -> list[Ticket]:
        """The order in which the waiting tickets would be served if nothing else arrived."""
        waiting, served, now = list(self._waiting), dict(self._last_served), self._clock()
        counter = itertools.count(max(served.values(), default=0) + 1)
        result = []
        while waiting:
            ticket = self._pick(waiting, served, now)
            waiting.remove(ticket)
            served[ticket.chat_id] = next(counter)
            result.append(ticket)
        return result

    def _announce_positions(self) -> None:
        if not any(t.on_position for t in self._waiting):
            return
        for position, ticket in enumerate(self._order(), start=1):
            if ticket.on_position:
                ticket.on_position(position)

