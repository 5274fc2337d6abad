"""The service's journaled path: nothing accepted is lost, fairness, back-pressure, one run per content."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing

import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import Busy, ChatscribeError, UnreadableMedia
from chatscribe.core.jobs.journal import Journal
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript
from tests.audio_tools import variants
from tests.fakes.collector import Collector
from tests.fakes.receipts import MemoryReceipt
from tests.waiting import until
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def _service(settings: Settings, engine: FasterWhisperEngine, collector: Collector, **changes: object):
    svc = TranscriptionService(settings=settings.model_copy(update=changes), engine=engine)
    svc.register("fake", collector)
    return svc


async def test_submit_journals_before_returning_and_answers_once(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note.ogg": audio("jfk_voice.ogg")})
    async with _service(settings, tiny_engine, collector) as svc:
        job = await svc.submit(collector.request("note.ogg"))
        assert svc.journal.states()[job.id] in ("queued", "running")
        answers = await collector.wait_for(1)
        await svc.wait_idle()
        assert svc.journal.states()[job.id] == "delivered"
    assert len(answers) == 1
    assert isinstance(answers[0].outcome, Transcript)
    assert wer(JFK, answers[0].outcome.text) <= 0.1


async def test_bad_file_gets_its_answer_and_the_next_one_still_works(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"bad.ogg": audio("random_bytes.ogg"), "good.ogg": audio("jfk_voice.ogg")})
    async with _service(settings, tiny_engine, collector) as svc:
        await svc.submit(collector.request("bad.ogg"))
        await svc.submit(collector.request("good.ogg"))
        answers = await collector.wait_for(2)
    by_file = {a.job_id: a.outcome for a in answers}
    outcomes = list(by_file.values())
    assert any(isinstance(o, UnreadableMedia) for o in outcomes)
    assert any(isinstance(o, Transcript) and o.has_speech for o in outcomes)


async def test_a_short_burst_from_one_chat_does_not_starve_another(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    notes = variants(audio("jfk.flac"), 11, seconds=4)
    collector = Collector(files={f"a{i}": data for i, data in enumerate(notes[:10])} | {"b0": notes[10]})
    async with _service(settings, tiny_engine, collector, workers=1) as svc:
        for i in range(10):
            await svc.submit(collector.request(f"a{i}", chat="A"))
        b_job = await svc.submit(collector.request("b0", chat="B"))
        answers = await collector.wait_for(11, timeout=120)
    # Round robin puts B's note first in line the moment it is queued, ahead of A's waiting burst. (Where
    # it lands among the answers depends on how many of A's notes were already running in a batch when
    # it arrived, which is timing, not fairness.)
    b_places = [u.position for job, u in collector.progress_updates if job == b_job.id and u.stage == "queued"]
    assert b_places, "B never waited: the scenario did not test fairness"
    assert all(place == 1 for place in b_places), f"B was queued behind A's burst: {b_places}"
    assert any(a.chat_id == "B" and isinstance(a.outcome, Transcript) for a in answers)


async def test_queue_cap_answers_busy_and_loses_nothing_accepted(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    notes = variants(audio("jfk.flac"), 5, seconds=3)
    collector = Collector(files={f"n{i}": data for i, data in enumerate(notes)})
    collector.hold_fetch = asyncio.Event()  # everything accepted stays in flight while we overflow
    async with _service(settings, tiny_engine, collector, queue_max=3, workers=1) as svc:
        accepted = [await svc.submit(collector.request(f"n{i}", user=f"u{i}")) for i in range(3)]
        with pytest.raises(Busy) as refused:
            await svc.submit(collector.request("n3", user="u3"))
        collector.hold_fetch.set()
        answers = await collector.wait_for(3)
        await svc.wait_idle()
        assert all(state == "delivered" for state in svc.journal.states().values())
    assert "try again in about" in refused.value.user_message
    assert sorted(a.job_id for a in answers) == sorted(job.id for job in accepted)


async def test_user_rate_limit_answers_busy_with_an_honest_wait(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    notes = variants(audio("jfk.flac"), 3, seconds=3)
    collector = Collector(files={f"n{i}": data for i, data in enumerate(notes)})
    async with _service(settings, tiny_engine, collector, user_rate="2/hour") as svc:
        first = [await svc.submit(collector.request(f"n{i}", user="same")) for i in range(2)]
        with pytest.raises(Busy) as refused:
            await svc.submit(collector.request("n2", user="same"))
        await svc.submit(collector.request("n2", user="someone else"))
        answers = await collector.wait_for(3)
    assert refused.value.retry_after_s > 3000  # the window is an hour: the estimate says so
    assert "60 minutes" in refused.value.user_message
    assert {job.id for job in first} <= {a.job_id for a in answers}


async def test_identical_files_at_once_are_transcribed_once(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    data = audio("jfk_voice.ogg")
    collector = Collector(files={"one": data, "two": data})
    async with _service(settings, tiny_engine, collector) as svc:
        await svc.submit(collector.request("one", chat="A"))
        await svc.submit(collector.request("two", chat="B"))
        answers = await collector.wait_for(2)
        runs = svc.metrics.transcriptions._value.get()
    assert runs == 1
    assert answers[0].outcome.text == answers[1].outcome.text  # type: ignore[union-attr]


async def test_transcribed_but_not_sent_is_delivered_after_restart_once(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note": audio("jfk_voice.ogg")}, hold_delivery=asyncio.Event())
    async with _service(settings, tiny_engine, collector, shutdown_grace_s=0) as svc:
        job = await svc.submit(collector.request("note"))
        await until(lambda: svc.journal.states()[job.id] == "transcribed")
    # the process is gone before it sent anything
    assert Journal(settings.data_dir / "jobs.sqlite3").states()[job.id] == "transcribed"

    after = Collector(files=collector.files)
    async with _service(settings, tiny_engine, after) as svc:
        assert await svc.resume("fake") == 1
        answers = await after.wait_for(1)
        await svc.wait_idle()
        assert svc.journal.states()[job.id] == "delivered"
        assert after.fetches == []  # the journal had the transcript: nothing downloaded again
    assert len(answers) == 1
    assert isinstance(answers[0].outcome, Transcript)
    async with _service(settings, tiny_engine, Collector()) as svc:
        assert await svc.resume("fake") == 0  # and a third start sends nothing more


async def test_accepted_but_not_transcribed_runs_again_after_restart(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note": audio("jfk_voice.ogg")}, hold_fetch=asyncio.Event())
    async with _service(settings, tiny_engine, collector, shutdown_grace_s=0) as svc:
        job = await svc.submit(collector.request("note"))
        await until(lambda: collector.fetches == ["note"])
    assert Journal(settings.data_dir / "jobs.sqlite3").states()[job.id] == "running"

    after = Collector(files=collector.files)
    async with _service(settings, tiny_engine, after) as svc:
        assert await svc.resume("fake") == 1
        answers = await after.wait_for(1)
    assert [a.job_id for a in answers] == [job.id]
    assert wer(JFK, answers[0].outcome.text) <= 0.1  # type: ignore[union-attr]


async def test_jobs_journaled_before_an_upgrade_still_run(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    """A journal written before the crash count existed (no media_in_hand/crashes columns) keeps its jobs."""
    collector = Collector(files={"note": audio("jfk_voice.ogg")})
    path = settings.data_dir / "jobs.sqlite3"
    journal = Journal(path)
    job = journal.add(collector.request("note"), TranscribeOptions())
    journal.close()
    with closing(sqlite3.connect(path)) as db:
        for column in ("media_in_hand", "crashes"):
            db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
        db.commit()
    async with _service(settings, tiny_engine, collector) as svc:
        assert await svc.resume("fake") == 1
        answers = await collector.wait_for(1)
    assert [a.job_id for a in answers] == [job.id]
    assert wer(JFK, answers[0].outcome.text) <= 0.1  # type: ignore[union-attr]


def test_a_journal_whose_mark_was_called_exposed_still_counts_the_crash(
    settings: Settings, audio: Callable[[str], bytes]
) -> None:
    """The media-in-hand mark was once the column `exposed`: a job marked so when the process died still
    has its crash counted after the upgrade."""
    collector = Collector(files={"note": audio("jfk_voice.ogg")})
    path = settings.data_dir / "jobs.sqlite3"
    journal = Journal(path)
    job = journal.add(collector.request("note"), TranscribeOptions())
    journal.media_in_hand(job.id, True)
    journal.close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("ALTER TABLE jobs RENAME COLUMN media_in_hand TO exposed")
        db.commit()
    journal = Journal(path)
    try:
        (entry,) = journal.unfinished("fake", collector)
    finally:
        journal.close()
    assert entry.job.id == job.id
    assert entry.crashes == 1


async def test_delivery_resumes_after_the_parts_already_sent(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    sent: list[tuple[str, int]] = []

    class TwoParts(Collector):
        async def deliver(self, job, outcome, receipt):  # type: ignore[no-untyped-def]
            for part in range(job.parts_sent, 2):
                if self.hold_delivery is not None and part == 1:
                    await self.hold_delivery.wait()  # dies between part 1 and part 2
                sent.append((job.id, part))
                await receipt.part_sent()
            await super().deliver(dataclasses.replace(job), outcome, MemoryReceipt())

    first = TwoParts(files={"note": audio("jfk_voice.ogg")}, hold_delivery=asyncio.Event())
    async with _service(settings, tiny_engine, first, shutdown_grace_s=0) as svc:
        job = await svc.submit(first.request("note"))
        await until(lambda: len(sent) == 1)
    second = TwoParts(files=first.files)
    async with _service(settings, tiny_engine, second) as svc:
        await svc.resume("fake")
        await second.wait_for(1)
    assert sent == [(job.id, 0), (job.id, 1)]


TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldA"  # the shape of a Discord interaction token


async def test_a_delivered_job_keeps_no_transcript_or_token_and_goes_after_the_retention(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note": audio("jfk_voice.ogg"), "later": audio("jfk.flac")})
    path = settings.data_dir / "jobs.sqlite3"
    request = MediaRequest(platform="fake", chat_id="C", user_id="U", fetch=collector.fetcher({"file": "note"}),
                           file_name="my secret meeting.ogg",
                           reference={"file": "note", "interaction_token": TOKEN, "url": "https://cdn/x?sig=1"})
    async with _service(settings, tiny_engine, collector, shutdown_grace_s=0) as svc:
        done = await svc.submit(request)
        answers = await collector.wait_for(1)
        await svc.wait_idle()
        assert "country" in answers[0].outcome.text  # type: ignore[union-attr]
        with closing(sqlite3.connect(path)) as db:
            row = " ".join(str(value) for value in db.execute("SELECT * FROM jobs WHERE id=?", (done.id,)).fetchone())
        assert "delivered" in row
        for secret in ("country", TOKEN, "sig=1", "secret meeting"):
            assert secret not in row, secret
        collector.hold_fetch = asyncio.Event()
        waiting = await svc.submit(collector.request("later"))  # accepted, not answered when the process stops
        await until(lambda: collector.fetches[-1:] == ["later"])

    # Nor is it left behind in the file's free pages, where anyone reading the file could find it.
    raw = path.read_bytes()
    for secret in (b"country", TOKEN.encode(), b"secret meeting"):
        assert secret not in raw, secret
    day = 24 * 3600.0
    assert settings.job_retention_s == day
    almost = Journal(path, retention_s=day, clock=lambda: time.time() + day - 600)
    assert set(almost.states()) == {done.id, waiting.id}
    almost.close()
    after = Journal(path, retention_s=day, clock=lambda: time.time() + day + 600)
    assert after.states() == {waiting.id: "running"}  # the answered job is gone, the unanswered one is not
    after.close()

    resumed = Collector(files=collector.files)
    async with _service(settings, tiny_engine, resumed) as svc:
        assert await svc.resume("fake") == 1
        answers = await resumed.wait_for(1)
    assert [a.job_id for a in answers] == [waiting.id]


async def test_transcribe_refuses_while_shutting_down(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"note": audio("jfk_voice.ogg")})
    svc = _service(settings, tiny_engine, collector)
    await svc.aclose()
    with pytest.raises(ChatscribeError, match="restarting"):
        await svc.submit(collector.request("note"))
