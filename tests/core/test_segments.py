"""The seam for text shown while a note is still being transcribed: SegmentDone, as each segment is decoded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.jobs.runner import LocalRunner, SegmentDone, Work
from chatscribe.core.media import MediaRequest
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from tests.audio_tools import variants
from tests.waiting import until

HOUR = 3600.0
LONG = "multilingual.mp3"
"""A minute of speech: two of Whisper's 30 s windows."""


def _request(data: bytes) -> MediaRequest:
    async def fetch(limit: int) -> bytes:
        return data

    return MediaRequest(platform="cli", chat_id="C", user_id="U", fetch=fetch, kind="audio", size_bytes=len(data))


async def test_segments_reach_the_caller_while_the_rest_is_decoded_and_join_to_the_text(
    service: TranscriptionService, audio: Callable[[str], bytes],
) -> None:
    seen: list[tuple[SegmentDone, float]] = []

    def finished() -> float:
        return service.metrics.registry.get_sample_value("chatscribe_transcriptions_total") or 0.0

    transcript = await service.transcribe(_request(audio(LONG)),
                                          segments=lambda done: seen.append((done, finished())))
    assert len(seen) >= 2
    assert seen[0][1] == 0.0, "the first segment came only once the whole note was transcribed"
    assert [done.index for done, _ in seen] == list(range(len(seen)))
    fractions = [done.fraction for done, _ in seen]
    assert fractions == sorted(fractions)
    assert 0 < fractions[0] < 1
    assert fractions[-1] <= 1
    # What a chat would show so far is the start of the answer it finally gets (here, all of it).
    assert " ".join(d.segment.text.strip() for d, _ in seen if d.segment.text.strip()) == transcript.text
    assert [d.segment for d, _ in seen] == list(transcript.segments)


async def test_a_repeat_answered_from_the_cache_reports_no_segments(
    service: TranscriptionService, audio: Callable[[str], bytes],
) -> None:
    first: list[SegmentDone] = []
    again: list[SegmentDone] = []
    await service.transcribe(_request(audio("jfk.flac")), segments=first.append)
    transcript = await service.transcribe(_request(audio("jfk.flac")), segments=again.append)
    assert first
    assert not again
    assert "country" in transcript.text.lower()


async def test_notes_transcribed_in_one_batch_report_no_segments(
    tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    composed: list[int] = []
    runner = LocalRunner(tiny_engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batch_window_s=0.0,
                         batching="packed", on_batch=lambda works: composed.append(len(works)))
    seen: list[SegmentDone] = []
    notes = variants(audio("jfk.flac"), 2, seconds=4)
    works = [Work("chat", data, 4.0, TranscribeOptions(), conversation="telegram:1", on_segment=seen.append)
             for data in notes]
    async with runner.scheduler.turn("someone else", 1.0):  # every note waits, so they go as one batch
        runs = [asyncio.ensure_future(runner.run(work)) for work in works]
        await until(lambda: runner.scheduler.waiting == len(works), "every note queued")
    transcripts = await asyncio.gather(*runs)
    assert composed == [2], "not transcribed as one batch"
    assert all("americans" in t.text.lower() for t in transcripts)
    assert seen == []  # their text arrives with the transcript
