"""Scale-out with a real redis-server and real `chatscribe worker` processes running tiny.en.

Every accepted note is answered exactly once when a worker is SIGKILLed mid-job, when another is
stopped (SIGTERM) mid-job, and when Redis is stopped and started again mid-burst; the same content
from two chats, on two front ends, is transcribed once; a note that keeps killing workers is set aside.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.errors import ChatscribeError  # noqa: E402
from chatscribe.core.jobs.crashes import CRASH_LIMIT  # noqa: E402
from chatscribe.core.scaleout.runner import DELAYED  # noqa: E402
from chatscribe.core.scaleout.schema import ATTEMPTS_PATTERN, GROUP, STREAM, TRANSCRIBED  # noqa: E402
from chatscribe.core.transcript import Transcript  # noqa: E402
from tests.audio_tools import variants  # noqa: E402
from tests.scaleout.cluster import FrontEnd, RedisServer, Workers, await_until, front_end  # noqa: E402

pytestmark = pytest.mark.timeout(240)

NOTE_S = 3.0


def notes(audio: Callable[[str], bytes], count: int) -> list[bytes]:
    return variants(audio("jfk.flac"), count, seconds=NOTE_S)


async def submit_all(front: FrontEnd, media: list[bytes], *, chats: int, start: int = 0) -> list[str]:
    ids = []
    for index, data in enumerate(media, start=start):
        name = f"note-{index}"
        front.collector.files[name] = data
        job = await front.service.submit(front.collector.request(name, chat=f"chat-{index % chats}"))
        ids.append(job.id)
    return ids


def assert_answered_once(front: FrontEnd, job_ids: list[str]) -> None:
    answered = Counter(answer.job_id for answer in front.collector.answers)
    assert set(answered) == set(job_ids), "every accepted note gets an answer"
    assert max(answered.values()) == 1, f"answered more than once: {[j for j, n in answered.items() if n > 1]}"
    for answer in front.collector.answers:
        assert isinstance(answer.outcome, Transcript), answer.outcome
        assert "americans" in answer.outcome.text.lower(), answer.outcome.text
    states = front.service.journal.states()
    assert {states[job_id] for job_id in job_ids} == {"delivered"}


async def test_worker_killed_then_another_stopped_mid_burst_every_note_answered_once(
    redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    workers.start(2)
    client = redis_server.client()

    def holding(minimum: int, candidates: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes] | None:
        """One of `candidates` holding at least `minimum` notes it has not answered yet."""
        summary = client.xpending(STREAM, GROUP)
        for consumer in summary["consumers"] if summary["pending"] else ():
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else str(consumer["name"])
            process = workers.by_name(name)
            if consumer["pending"] >= minimum and process in candidates:
                return process
        return None

    async with front_end(redis_server, tmp_path / "front") as front:
        job_ids = await submit_all(front, notes(audio, 30), chats=6)

        # SIGKILL a worker holding a batch: its notes are taken over after the visibility timeout.
        victim = await await_until(lambda: front.collector.answers and holding(2, workers.alive()),
                                   "a worker holding a batch mid-burst", timeout=90)
        survivor = next(p for p in workers.alive() if p is not victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        workers.start(1)  # its replacement, as an orchestrator would start one

        # SIGTERM (a rolling deploy) the other one mid-job: what it cannot finish in its grace is left pending.
        await await_until(lambda: holding(1, [survivor]), "the other worker at work", timeout=90)
        survivor.send_signal(signal.SIGTERM)
        await await_until(lambda: survivor.poll() is not None, "the stopped worker to exit", timeout=20)
        assert survivor.returncode == 0

        await front.collector.wait_for(len(job_ids), timeout=150)
        await front.service.wait_idle()
        assert_answered_once(front, job_ids)
    assert "taking over job message" in workers.log_text(), "the killed worker's batch was taken over"
    client.close()


async def test_redis_stopped_and_restarted_mid_burst_nothing_lost(
    redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    workers.start(2)
    media = notes(audio, 14)
    async with front_end(redis_server, tmp_path / "front") as front:
        job_ids = await submit_all(front, media[:10], chats=4)
        await await_until(lambda: len(front.collector.answers) >= 2, "the first answers", timeout=90)

        redis_server.stop()
        # Still accepting: journaled locally, and the people are told their answers are delayed.
        job_ids += await submit_all(front, media[10:], chats=4, start=10)
        await await_until(
            lambda: any(update.detail == DELAYED for _, update in front.collector.progress_updates),
            "a 'delayed' status", timeout=30,
        )
        redis_server.start()  # empty: no persistence, so the front end publishes its waiting work again

        await front.collector.wait_for(len(job_ids), timeout=150)
        await front.service.wait_idle()
        assert_answered_once(front, job_ids)
    assert all(p.poll() is None for p in workers.processes), "workers survive the outage and reconnect"


async def test_same_content_from_two_chats_on_two_front_ends_is_transcribed_once(
    redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    workers.start(2)
    data = notes(audio, 1)[0]
    async with front_end(redis_server, tmp_path / "a") as first, front_end(redis_server, tmp_path / "b") as second:
        ids_first = await submit_all(first, [data, data], chats=2)
        ids_second = await submit_all(second, [data], chats=1, start=7)
        await first.collector.wait_for(2, timeout=90)
        await second.collector.wait_for(1, timeout=90)
        await first.service.wait_idle()
        await second.service.wait_idle()
        assert_answered_once(first, ids_first)
        assert_answered_once(second, ids_second)
        texts = {a.outcome.text for a in [*first.collector.answers, *second.collector.answers]}  # type: ignore[union-attr]
        assert len(texts) == 1
    client = redis_server.client()
    assert int(client.get(TRANSCRIBED) or 0) == 1, "one engine run for three requests of the same content"
    client.close()


async def test_a_chat_arriving_after_a_burst_is_served_before_the_burst_ends(
    redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    workers.start(1)
    media = variants(audio("jfk.flac"), 25, seconds=2.0)
    async with front_end(redis_server, tmp_path / "front") as front:
        for index, data in enumerate(media[:24]):
            front.collector.files[f"a{index}"] = data
            await front.service.submit(front.collector.request(f"a{index}", chat="chat-a"))
        front.collector.files["b"] = media[24]
        await front.service.submit(front.collector.request("b", chat="chat-b"))

        answers = await front.collector.wait_for(25, timeout=150)
        order = [answer.chat_id for answer in answers]
        # The front end hands the worker no more than it can hold (one batch), in fair order: chat B goes
        # out with the next free slot instead of behind all 24 of A's notes (first-in-first-out: none after).
        assert order[order.index("chat-b") + 1:].count("chat-a") >= 8, order


async def test_a_note_that_keeps_killing_workers_is_set_aside(
    redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    """Each worker that takes the one-minute recording is SIGKILLed while transcribing it (as a decoder crash
    or the OOM killer would end it); after CRASH_LIMIT such deaths the next worker answers with an
    explanation instead of dying too."""
    workers.start(1)
    client = redis_server.client()

    def attempts() -> int:
        return sum(int(client.get(name) or 0) for name in client.scan_iter(ATTEMPTS_PATTERN))

    async with front_end(redis_server, tmp_path / "front") as front:
        front.collector.files["poison"] = audio("multilingual.mp3")
        job = await front.service.submit(front.collector.request("poison", chat="chat-0"))
        for crash in range(CRASH_LIMIT):
            await await_until(lambda: attempts() == crash + 1, "a worker to take the recording", timeout=90)  # noqa: B023
            (victim,) = workers.alive()
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            workers.start(1)  # its replacement, as an orchestrator would start one
        (answer,) = await front.collector.wait_for(1, timeout=120)
        await front.service.wait_idle()
    assert answer.job_id == job.id
    assert isinstance(answer.outcome, ChatscribeError)
    assert answer.outcome.code == "set_aside"
    assert "set it aside" in answer.outcome.user_message
    assert workers.alive(), "the last worker lives on"
    assert "set aside" in workers.log_text()
    client.close()
