"""A worker packs only one conversation's notes: the job message carries each note's conversation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.config import Settings  # noqa: E402
from chatscribe.core.jobs.runner import LocalRunner, Work  # noqa: E402
from chatscribe.core.metrics import Metrics  # noqa: E402
from chatscribe.core.options import TranscribeOptions  # noqa: E402
from chatscribe.core.scaleout.runner import RedisRunner  # noqa: E402
from chatscribe.core.scaleout.worker import Worker  # noqa: E402
from tests.audio_tools import to_wav  # noqa: E402

if TYPE_CHECKING:
    from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
    from tests.scaleout.cluster import RedisServer


async def test_a_worker_gets_each_notes_conversation_and_packs_no_two_together(
    redis_server: RedisServer, tiny_engine: FasterWhisperEngine, tmp_path: Path, audio: object,
) -> None:
    from chatscribe.core.media import decode_audio

    settings = Settings(_env_file=None, data_dir=tmp_path, model="tiny.en", device="cpu",  # type: ignore[call-arg]
                        broker_url=redis_server.url, visibility_timeout_s=5)
    seen: list[tuple[str | None, ...]] = []
    local = LocalRunner(tiny_engine, slots=1, max_duration_s=60, metrics=Metrics(), batching="packed",
                        on_batch=lambda works: seen.append(tuple(w.conversation for w in works)))
    worker = Worker(settings, local, slots=4)
    front = RedisRunner(settings, poll_s=0.2)
    front.start()
    stop = asyncio.Event()
    serving = asyncio.ensure_future(worker.serve(stop))
    samples = decode_audio(audio("jfk.flac"), max_duration_s=60).samples  # type: ignore[operator]
    notes = [(samples[i * 16000 : (i + 3) * 16000], chat) for i, chat in enumerate(["telegram:1", "telegram:2"] * 2)]
    try:
        works = [Work(chat.split(":")[1], to_wav(clip), 3.0, TranscribeOptions(), conversation=chat)
                 for clip, chat in notes]
        answers = await asyncio.wait_for(asyncio.gather(*(front.run(w) for w in works)), timeout=240)
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=30)
        front.close()
    assert all(a.text.strip() for a in answers)
    assert seen, "the worker composed no batch"
    for batch in seen:
        assert None not in batch, f"a note reached the worker without its conversation: {seen}"
        assert len(set(batch)) == 1, f"notes of two conversations in one packed batch: {seen}"
