"""Admission's own bounds: the per-person rate limiter forgets people, the media budget counts bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import Busy
from chatscribe.core.jobs.admission import MediaBudget, RateLimiter
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript
from tests.fakes.collector import Collector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limiter_stays_bounded_after_many_distinct_people() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 60.0, clock=clock)
    for person in range(10_000):
        assert limiter.take(f"user{person}") is None
        clock.now += 0.1  # 10,000 people over 1,000 s: at most 600 of them inside one 60 s window
        assert len(limiter) <= 601
    assert len(limiter) >= 590


def test_the_rate_limiter_still_limits_and_says_when_to_come_back() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 60.0, clock=clock)
    assert limiter.take("alice") is None
    clock.now += 10
    assert limiter.take("alice") is None
    assert limiter.take("alice") == 50.0
    assert limiter.take("bob") is None
    clock.now += 51
    assert limiter.take("alice") is None  # the first request left the window
    clock.now += 120
    assert limiter.take("carol") is None
    assert len(limiter) == 1  # alice and bob, idle for a whole window, are gone


async def test_service_admission_forgets_people_whose_window_is_empty(
    tmp_path: Path, tiny_engine: FasterWhisperEngine
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, user_rate="1/sec")  # type: ignore[call-arg]
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        for person in range(500):
            (await service.admit(platform="http", user_id=f"u{person}", size_bytes=0)).close()
        with pytest.raises(Busy):
            await service.admit(platform="http", user_id="u1", size_bytes=0)
        await asyncio.sleep(1.05)  # the window itself must pass: time, not synchronisation
        (await service.admit(platform="http", user_id="late", size_bytes=0)).close()
        assert len(service.admission.rate or ()) == 1


async def test_accepted_work_waits_for_room_in_the_media_budget() -> None:
    budget = MediaBudget(1000)
    first = budget.reserve(800)
    assert not budget.has_room(300)
    waiting = asyncio.ensure_future(budget.acquire(300))
    await asyncio.sleep(0)
    assert not waiting.done()
    first.resize(600)  # the download was smaller than declared: room now
    second = await asyncio.wait_for(waiting, 5)
    assert budget.held == 900
    second.release()
    second.release()  # once only
    first.release()
    assert budget.held == 0
    alone = budget.reserve(5000)  # larger than the whole budget: runs, alone
    assert not budget.has_room(1)
    alone.release()
    assert budget.has_room(5000)


async def test_a_chat_note_beyond_the_media_budget_gets_the_busy_answer_and_nothing_is_lost(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    """Two 34 KB notes declared at 40 KB each against a 50 KB budget: while the first is held (its download
    waits here), the second is turned away with the busy sentence; once the first is answered it fits."""
    note = audio("jfk_voice.ogg")
    collector = Collector(files={"a": note, "b": note[:-1]}, hold_fetch=asyncio.Event())
    service = TranscriptionService(settings=settings.model_copy(update={"media_memory_mb": 0.05}),
                                   engine=tiny_engine)
    service.register("fake", collector)
    async with service:
        first = dataclasses.replace(collector.request("a", chat="one"), size_bytes=40_000)
        second = dataclasses.replace(collector.request("b", chat="two"), size_bytes=40_000)
        await service.submit(first)
        deadline = time.monotonic() + 10
        while collector.fetches != ["a"]:  # the first note has its place and is downloading
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        with pytest.raises(Busy, match="try again"):
            await service.submit(second)
        assert collector.fetches == ["a"]
        collector.hold_fetch.set()
        (answer,) = await collector.wait_for(1)
        assert isinstance(answer.outcome, Transcript)
        await service.wait_idle()
        await service.submit(second)
        answers = await collector.wait_for(2)
        await service.wait_idle()
    assert [a.chat_id for a in answers] == ["one", "two"]
    assert all(isinstance(a.outcome, Transcript) for a in answers)


async def test_a_person_at_the_rate_limit_who_sends_a_transcribed_file_again_gets_it_and_no_job_is_written(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note.ogg": audio("jfk_voice.ogg"), "other.ogg": audio("jfk.flac")})
    changed = settings.model_copy(update={"user_rate": "1/hour"})
    async with TranscriptionService(settings=changed, engine=tiny_engine) as service:
        service.register("fake", collector)
        await service.submit(collector.request("note.ogg", user="alice", file_id="F1"))
        await collector.wait_for(1)
        await service.wait_idle()
        with pytest.raises(Busy):  # the one request of the hour is used up
            await service.submit(collector.request("other.ogg", user="alice", file_id="F2"))

        repeat = await service.submit(collector.request("note.ogg", user="alice", file_id="F1"))
        answers = await collector.wait_for(2)
        await service.wait_idle()
        jobs = service.journal.states()

    first, again = answers[0].outcome, answers[1].outcome
    assert isinstance(first, Transcript)
    assert isinstance(again, Transcript)
    assert again.from_cache
    assert again.text == first.text
    assert collector.fetches == ["note.ogg"], "the repeat is answered without downloading"
    assert answers[1].job_id == repeat.id
    assert list(jobs.values()) == ["delivered"], "only the first send left a job record"
