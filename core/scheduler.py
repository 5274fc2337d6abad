"""Who transcribes next: a bounded number of slots shared fairly between chats.

Round robin across chats (the chat served longest ago goes first, a new chat before one just served),
shorter media first within a chat's turn, with ageing so a long recording is not starved forever.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from .errors import ShuttingDown

AGEING = 1.0
"""Seconds of media length forgiven per second waited."""

PositionCallback = Callable[[int], None]


@dataclass(eq=False)
class _Ticket:
    chat_id: str
    duration_s: float
    on_position: PositionCallback | None
    enqueued: float = field(default_factory=time.monotonic)
    order: int = 0
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def urgency(self, now: float) -> float:
        return self.duration_s - AGEING * (now - self.enqueued)


class FairScheduler:
    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.running = 0
        self._waiting: list[_Ticket] = []
        self._last_served: dict[str, float] = {}
        self._counter = itertools.count()
        self._closed = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def waiting_audio_s(self) -> float:
        return sum(t.duration_s for t in self._waiting)

    @asynccontextmanager
    async def turn(
        self, chat_id: str, duration_s: float, on_position: PositionCallback | None = None
    ) -> AsyncIterator[None]:
        """Wait for this chat's fair turn at a free slot, hold the slot for the body."""
        if self._closed:
            raise ShuttingDown()
        ticket = _Ticket(chat_id, duration_s, on_position, order=next(self._counter))
        self._waiting.append(ticket)
        self._dispatch()
        try:
            await ticket.granted
        except BaseException:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self._announce_positions()
            elif ticket.granted.done() and not ticket.granted.cancelled():
                self._release()
            raise
        try:
            yield
        finally:
            self._release()

    def close(self) -> None:
        """Grant no more turns; everyone still waiting gets ShuttingDown."""
        self._closed = True
        for ticket in self._waiting:
            if not ticket.granted.done():
                ticket.granted.set_exception(ShuttingDown())
        self._waiting.clear()

    def _release(self) -> None:
        self.running -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        granted = False
        while self.running < self.slots and self._waiting and not self._closed:
            ticket = self._pick(self._waiting, self._last_served, time.monotonic())
            self._waiting.remove(ticket)
            self._last_served[ticket.chat_id] = next(self._counter)
            self.running += 1
            ticket.granted.set_result(None)
            granted = True
        if granted or self._waiting:
            self._announce_positions()

    @staticmethod
    def _pick(waiting: list[_Ticket], last_served: dict[str, float], now: float) -> _Ticket:
        def chat_rank(ticket: _Ticket) -> tuple[float, int]:
            return last_served.get(ticket.chat_id, -math.inf), ticket.order

        first = min(waiting, key=chat_rank)
        same_chat = [t for t in waiting if t.chat_id == first.chat_id]
        return min(same_chat, key=lambda t: (t.urgency(now), t.order))

    def _order(self) -> list[_Ticket]:
        """The order in which the waiting tickets would be served if nothing else arrived."""
        waiting, served, now = list(self._waiting), dict(self._last_served), time.monotonic()
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

    def position(self, chat_id: str) -> int:
        """1-based position the next ticket of `chat_id` would get, for estimates."""
        order = self._order()
        for position, ticket in enumerate(order, start=1):
            if ticket.chat_id == chat_id:
                return position
        return len(order) + 1
