"""The scale-out as deployed: `chatscribe run telegram` against the fake Bot API, two `chatscribe worker`
processes and a real redis-server. A worker and then the front end itself are SIGKILLed mid-burst; every
voice note still gets its transcript, once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.scaleout.schema import GROUP, STREAM  # noqa: E402
from tests.audio_tools import variants  # noqa: E402
from tests.fakes import telegram_api  # noqa: E402
from tests.scaleout.cluster import WORKER_ENV, RedisServer, Workers, await_until, free_port  # noqa: E402

pytestmark = pytest.mark.timeout(240)

NOTES = 16
CHATS = (101, 102, 103, 104, 105)


@pytest.fixture
async def fake() -> AsyncIterator[Any]:
    async with telegram_api.FakeTelegram() as api:
        yield api


class FrontEndProcess:
    """`chatscribe run telegram` with CHATSCRIBE_BROKER_URL set: receives, journals, schedules, answers."""

    def __init__(self, fake: Any, redis_server: RedisServer, data_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATSCRIBE_", "TELEGRAM_"))}
        self.env.update(WORKER_ENV, CHATSCRIBE_BROKER_URL=redis_server.url, CHATSCRIBE_DATA_DIR=str(data_dir),
                        CHATSCRIBE_HTTP_PORT=str(free_port()), TELEGRAM_BOT_TOKEN=fake.token,
                        TELEGRAM_BASE_URL=fake.base_url, TELEGRAM_BASE_FILE_URL=fake.base_file_url)
        self.data_dir = data_dir
        self.fake = fake
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    async def start(self) -> None:
        self.runs += 1
        polls_before = len(self.fake.calls_to("getUpdates"))
        log = (self.data_dir.parent / f"front-end-{self.runs}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, watched through the fake
            [sys.executable, "-m", "chatscribe", "run", "telegram"], env=self.env, cwd=self.data_dir.parent,
            stdout=log, stderr=subprocess.STDOUT,
        )
        process = self.process
        await self.fake.wait_for(
            lambda: len(self.fake.calls_to("getUpdates")) > polls_before or process.poll() is not None, timeout=120)
        assert process.poll() is None, "chatscribe run exited early"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def journal_states(self) -> Counter[str]:
        path = self.data_dir / "jobs.sqlite3"
        if not path.exists():
            return Counter()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return Counter(state for (state,) in db.execute("SELECT state FROM jobs"))


def transcripts_per_note(fake: Any, notes: list[dict[str, Any]]) -> Counter[int]:
    """How many bot messages carrying the transcript reply to each note."""
    counts: Counter[int] = Counter({note["message_id"]: 0 for note in notes})
    for chat in CHATS:
        for message in fake.bot_messages(chat):
            text = (message.get("text") or "").lower()
            target = message.get("reply_to_message", {}).get("message_id")
            if target in counts and "americans" in text:
                counts[target] += 1
    return counts


async def test_telegram_front_end_and_two_workers_answer_every_note_once_when_a_worker_and_the_front_end_die(
    fake: Any, redis_server: RedisServer, workers: Workers, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    workers.start(2)
    front = FrontEndProcess(fake, redis_server, tmp_path / "front-data")
    await front.start()
    client = redis_server.client()
    try:
        notes = [fake.voice(data, chat_id=CHATS[i % len(CHATS)], user_id=CHATS[i % len(CHATS)], duration=3)
                 for i, data in enumerate(variants(audio("jfk.flac"), NOTES, seconds=3.0))]
        last_update = 0
        for note in notes:
            last_update = await fake.push(note)
        await fake.wait_for(lambda: fake.acknowledged_below > last_update, timeout=60)  # all journaled

        def holding_batch() -> str | None:
            summary = client.xpending(STREAM, GROUP)
            for consumer in summary["consumers"] if summary["pending"] else ():
                if consumer["pending"] >= 2:
                    name = consumer["name"]
                    return name.decode() if isinstance(name, bytes) else str(name)
            return None

        victim = workers.by_name(await await_until(holding_batch, "a worker holding a batch", timeout=90))
        assert victim is not None
        os.kill(victim.pid, signal.SIGKILL)

        await await_until(lambda: sum(transcripts_per_note(fake, notes).values()) >= 3, "the first answers", 120)
        front.kill()  # mid-burst: the journal on disk is all the next start has
        await front.start()

        await await_until(lambda: front.journal_states() == Counter({"delivered": NOTES}),
                          "every journaled note delivered", timeout=180, every=0.2)
        per_note = transcripts_per_note(fake, notes)
        assert set(per_note.values()) == {1}, f"notes answered other than once: {per_note}"
    finally:
        client.close()
        front.stop()
