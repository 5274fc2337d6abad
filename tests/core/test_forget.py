"""`forget` on real SQLite files: a conversation's transcripts, settings and jobs go; nobody else's do."""

from __future__ import annotations

from collections.abc import Callable

from chatscribe.core import Forgotten
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript
from tests.audio_tools import variants
from tests.fakes.collector import Collector


def _service(settings: Settings, engine: FasterWhisperEngine, collector: Collector) -> TranscriptionService:
    svc = TranscriptionService(settings=settings, engine=engine)
    svc.register("fake", collector)
    return svc


async def _answer(svc: TranscriptionService, collector: Collector, name: str, chat: str, file_id: str) -> Transcript:
    before = len(collector.answers)
    await svc.submit(collector.request(name, chat=chat, file_id=file_id))
    answers = await collector.wait_for(before + 1, timeout=120)
    await svc.wait_idle()
    outcome = answers[before].outcome
    assert isinstance(outcome, Transcript), outcome
    return outcome


async def test_forget_removes_the_chats_transcripts_settings_and_jobs_and_nothing_else(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    a_note, b_note = variants(audio("jfk.flac"), 2, seconds=4)
    collector = Collector(files={"a": a_note, "b": b_note})
    async with _service(settings, tiny_engine, collector) as svc:
        await _answer(svc, collector, "a", "A", "FA")
        await _answer(svc, collector, "b", "B", "FB")
        svc.preferences.set("fake", "A", "language", "de")
        svc.preferences.set("fake", "B", "language", "fr")
        again = await _answer(svc, collector, "a", "A", "FA")
        assert again.from_cache
        assert collector.fetches == ["a", "b"]

        forgotten = await svc.forget("fake", "A")

        assert forgotten == Forgotten(transcripts=1, settings=1, jobs=1)  # the repeat left no job record
        assert "forgotten" in forgotten.sentence
        assert "1 cached transcript," in forgotten.sentence
        assert svc.preferences.get_all("fake", "A") == {}
        assert svc.preferences.get_all("fake", "B") == {"language": "fr"}

    raw = (settings.data_dir / "cache.sqlite3").read_bytes()  # closed: the WAL is folded into the file
    assert raw.count(b"fellow Americans") == 1  # B's transcript is in the file; A's is gone from it, not just unlinked
    # After a restart, on the same files: A's re-send is downloaded and transcribed afresh, B's is not.
    async with _service(settings, tiny_engine, collector) as svc:
        fresh = await _answer(svc, collector, "a", "A", "FA")
        assert not fresh.from_cache
        assert collector.fetches == ["a", "b", "a"]
        kept = await _answer(svc, collector, "b", "B", "FB")
        assert kept.from_cache
        assert collector.fetches == ["a", "b", "a"]
        assert svc.preferences.get_all("fake", "B") == {"language": "fr"}
        chats = [row[0] for row in svc.journal._db.execute("SELECT chat_id FROM jobs")]
        assert sorted(chats) == ["A", "B"]  # A's new job, B's first (its repeat has none): A's old one is gone


async def test_a_file_two_chats_sent_stays_for_the_other_one(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]
) -> None:
    collector = Collector(files={"same": audio("jfk_voice.ogg")})
    async with _service(settings, tiny_engine, collector) as svc:
        await _answer(svc, collector, "same", "A", "F")
        await _answer(svc, collector, "same", "B", "F")  # forwarded: same file id, same bytes
        assert (await svc.forget("fake", "A")).transcripts == 1
        fetched = len(collector.fetches)

        kept = await _answer(svc, collector, "same", "B", "F")
        assert kept.from_cache
        assert len(collector.fetches) == fetched

        resent = await _answer(svc, collector, "same", "A", "F")
        assert len(collector.fetches) == fetched + 1  # A no longer reaches it by the id: the media is fetched
        assert resent.from_cache  # the bytes themselves match B's entry, which stays B's


async def test_forgetting_a_chat_with_nothing_stored_says_so(
    settings: Settings, tiny_engine: FasterWhisperEngine
) -> None:
    async with _service(settings, tiny_engine, Collector()) as svc:
        forgotten = await svc.forget("fake", "nobody")
    assert forgotten == Forgotten(0, 0, 0)
    assert forgotten.sentence == "There was nothing stored for this conversation: nothing to forget."
