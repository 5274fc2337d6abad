"""The fair scheduler on its own: who gets the next slot, who joins a batch, when a free slot waits."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from chatscribe.core.errors import ShuttingDown
from chatscribe.core.jobs.scheduler import FairScheduler, Release, Ticket, batch_wait_s
from tests.waiting import until

SHORT = ("en", "transcribe")
"""A batch key: what short notes with the same options share."""


class Grants:
    """Records each granted batch (as its tickets' names) and the release that frees its slot."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.releases: list[Release] = []
        self.failures: list[BaseException] = []
        self.granted = asyncio.Event()

    def submit(self, scheduler: FairScheduler, name: str, *, chat: str | None = None, seconds: float = 5.0,
               key: Hashable | None = SHORT) -> Ticket:
        return scheduler.submit(chat or name[0], seconds, item=name, batch_key=key, on_grant=self.on_grant,
                                on_fail=self.failures.append)

    def on_grant(self, batch: list[Ticket], release: Release) -> None:
        self.batches.append([t.item for t in batch])
        self.releases.append(release)
        self.granted.set()

    def release_last(self) -> None:
        self.releases[-1]()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_lone_note_starts_at_once_however_long_the_window() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=8, window_s=60.0)
    grants.submit(scheduler, "a1")
    assert grants.batches == [["a1"]]  # granted inside submit(): no timer, no waiting


async def test_a_note_after_a_quiet_spell_starts_at_once() -> None:
    clock, grants = Clock(), Grants()
    scheduler = FairScheduler(2, max_batch=8, window_s=0.05, clock=clock)
    grants.submit(scheduler, "a1")
    clock.now += 5.0  # long after the last arrival: nothing suggests more are coming
    grants.submit(scheduler, "b1")
    assert grants.batches == [["a1"], ["b1"]]


async def test_during_a_burst_a_free_slot_waits_briefly_and_takes_the_arrivals_together() -> None:
    grants = Grants()
    scheduler = FairScheduler(2, max_batch=8, window_s=0.05)
    grants.submit(scheduler, "a1")  # first of the burst: nothing before it, so it starts alone
    grants.granted.clear()
    grants.submit(scheduler, "b1")
    grants.submit(scheduler, "c1")
    assert grants.batches == [["a1"]]  # the second slot is free but holds the window open
    async with asyncio.timeout(5):
        await grants.granted.wait()
    assert grants.batches == [["a1"], ["b1", "c1"]]


def test_the_window_never_holds_a_lone_job_a_full_batch_or_an_unbatchable_one() -> None:
    def ticket(*, burst: bool, key: Hashable | None = SHORT) -> Ticket:
        return Ticket("chat", 5.0, lambda batch, release: None, lambda exc: None, batch_key=key, enqueued=10.0,
                      burst=burst)

    assert batch_wait_s(now=10.0, leader=ticket(burst=False), size=1, cap=8, window_s=0.03) == 0.0
    assert batch_wait_s(now=10.0, leader=ticket(burst=True), size=8, cap=8, window_s=0.03) == 0.0
    assert batch_wait_s(now=10.0, leader=ticket(burst=True, key=None), size=1, cap=8, window_s=0.03) == 0.0
    assert batch_wait_s(now=10.05, leader=ticket(burst=True), size=2, cap=8, window_s=0.03) == 0.0
    assert batch_wait_s(now=10.01, leader=ticket(burst=True), size=2, cap=8, window_s=0.03) == pytest.approx(0.02)


async def test_a_burst_from_one_chat_shares_the_batch_with_other_chats_in_round_robin() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=4)
    grants.submit(scheduler, "x-long", chat="X", key=None)  # holds the only slot
    for i in range(1, 7):
        grants.submit(scheduler, f"a{i}")
    grants.submit(scheduler, "b1")
    grants.submit(scheduler, "c1")
    grants.release_last()
    assert grants.batches[1] == ["a1", "b1", "c1", "a2"]
    grants.release_last()
    assert grants.batches[2] == ["a3", "a4", "a5", "a6"]


async def test_the_chat_that_waited_leads_the_next_batch() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=3)
    grants.submit(scheduler, "a1")
    for i in range(2, 10):
        grants.submit(scheduler, f"a{i}")
    grants.submit(scheduler, "b1")
    grants.release_last()
    assert grants.batches[1][0] == "b1"


async def test_notes_with_other_options_or_long_media_never_join_a_batch() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=8)
    grants.submit(scheduler, "x-long", chat="X", key=None)
    grants.submit(scheduler, "a1", key=("en", "transcribe"))
    grants.submit(scheduler, "b1", key=("de", "transcribe"))
    grants.submit(scheduler, "c1", key=("en", "translate"))
    grants.submit(scheduler, "d-long", key=None)
    grants.submit(scheduler, "e1", key=("en", "transcribe"))
    for _ in range(4):
        grants.release_last()
    assert grants.batches[1:] == [["a1", "e1"], ["b1"], ["c1"], ["d-long"]]


async def test_a_batch_holds_one_slot_and_releasing_twice_frees_it_once() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=2)
    for name in ("a1", "a2", "a3", "a4", "a5"):
        grants.submit(scheduler, name)
    assert scheduler.running == 1
    grants.releases[0]()
    grants.releases[0]()
    assert scheduler.running == 1
    assert grants.batches == [["a1"], ["a2", "a3"]]


async def test_closing_fails_the_waiting_and_refuses_new_tickets() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=4)
    grants.submit(scheduler, "a1")
    grants.submit(scheduler, "a2")
    scheduler.close()
    assert [type(e) for e in grants.failures] == [ShuttingDown]
    with pytest.raises(ShuttingDown):
        grants.submit(scheduler, "a3")


async def test_a_withdrawn_ticket_is_never_granted() -> None:
    grants = Grants()
    scheduler = FairScheduler(1, max_batch=4)
    grants.submit(scheduler, "a1")
    gone = grants.submit(scheduler, "b1")
    assert scheduler.withdraw(gone)
    grants.release_last()
    assert grants.batches == [["a1"]]
    assert scheduler.waiting == 0


async def test_turn_serves_one_holder_per_slot_in_fair_order() -> None:
    scheduler = FairScheduler(1)
    order: list[str] = []
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hold(name: str, chat: str) -> None:
        async with scheduler.turn(chat, 5.0):
            order.append(name)
            inside.set()
            await leave.wait()

    first = asyncio.ensure_future(hold("a1", "A"))
    await inside.wait()
    rest = [asyncio.ensure_future(hold(n, c)) for n, c in (("a2", "A"), ("a3", "A"), ("b1", "B"))]
    await until(lambda: scheduler.waiting == 3)
    assert scheduler.running == 1
    leave.set()
    await asyncio.gather(first, *rest)
    assert order == ["a1", "b1", "a2", "a3"]


async def test_short_notes_from_other_chats_go_before_a_chats_forwarded_long_recordings() -> None:
    grants = Grants()
    scheduler = FairScheduler(1)
    grants.submit(scheduler, "x-running", chat="X", key=None)  # holds the only slot
    for i in range(1, 4):
        grants.submit(scheduler, f"f{i}", chat="F", seconds=60.0, key=None)
    for chat in ("S", "T", "U"):
        grants.submit(scheduler, f"{chat.lower()}1", chat=chat, seconds=5.0, key=None)
        grants.submit(scheduler, f"{chat.lower()}2", chat=chat, seconds=5.0, key=None)
    order = []
    for _ in range(9):
        grants.release_last()
        order.append(grants.batches[-1][0])
    assert order[:3] == ["s1", "t1", "u1"]  # one short note from each chat first, in arrival order
    assert order.index("f1") > order.index("u2")  # the forwarded recordings wait behind the short notes
    assert order[-2:] == ["f2", "f3"]
