"""A data dir that fills up or turns read-only: the real service on real small file systems
(tests/storage_tools.py: a tmpfs filled to ENOSPC, an ext4 image the kernel remounts read-only), the real
tiny.en model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import DataDirUnavailable, StorageUnavailable
from chatscribe.core.preferences import Preferences
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript
from tests.fakes.collector import Collector
from tests.storage_tools import SmallDisk, mounted_broken_disk, mounted_small_disk
from tests.waiting import until
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
DEADLINE_S = 120.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with mounted_small_disk(tmp_path / "data", size="4m") as disk:
        yield disk


def _service(settings: Settings, engine: FasterWhisperEngine, collector: Collector, data_dir: Path
             ) -> TranscriptionService:
    svc = TranscriptionService(settings=settings.model_copy(update={"data_dir": data_dir}), engine=engine)
    svc.register("fake", collector)
    return svc


async def test_a_full_disk_refuses_new_work_with_a_sentence_answers_what_it_accepted_and_recovers(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes], small_disk: SmallDisk
) -> None:
    collector = Collector(files={"accepted": audio("jfk_voice.ogg"), "refused": audio("jfk.m4a"),
                                 "later": audio("jfk.flac")}, hold_fetch=asyncio.Event())
    async with _service(settings, tiny_engine, collector, small_disk.path) as svc:
        accepted = await svc.submit(collector.request("accepted", chat="A"))
        await until(lambda: "accepted" in collector.fetches, "the accepted note to be downloading")
        small_disk.fill()

        with pytest.raises(StorageUnavailable) as refused:
            await svc.submit(collector.request("refused", chat="B"))
        assert refused.value.user_message == (
            "I can't take new recordings right now: my storage is full. Please try again later.")

        # The note accepted before the disk filled is transcribed and answered, though neither its
        # transcript can be cached nor its progress journaled.
        assert collector.hold_fetch is not None
        collector.hold_fetch.set()
        (answer,) = await collector.wait_for(1, timeout=DEADLINE_S)
        assert answer.job_id == accepted.id
        assert isinstance(answer.outcome, Transcript)
        assert wer(JFK, answer.outcome.text) <= 0.15
        assert svc.journal.states()[accepted.id] != "delivered"  # not on disk yet: held in memory
        assert svc.journal.pending_writes() > 0

        small_disk.free()
        later = await svc.submit(collector.request("later", chat="B"))  # taken again once space returns
        answers = await collector.wait_for(2, timeout=DEADLINE_S)
        await svc.wait_idle()
        assert isinstance(answers[1].outcome, Transcript)
        assert wer(JFK, answers[1].outcome.text) <= 0.15
        # What was held in memory reached the disk: the next start will not answer it a second time.
        assert svc.journal.states() == {accepted.id: "delivered", later.id: "delivered"}
        assert svc.journal.pending_writes() == 0
    assert [a.job_id for a in collector.answers] == [accepted.id, later.id]


async def test_a_data_dir_turned_read_only_refuses_new_work_answers_the_running_note_and_keeps_it_resumable(
    settings: Settings, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    """The kernel turns the data dir's file system read-only under the process (an ext4 error with
    errors=remount-ro). Nothing can be recorded any more: new work is refused with a sentence, a note
    already accepted is still answered, and since its answer could not be recorded the journal still
    holds it, so the next start on the repaired disk answers it (again) rather than lose it."""
    collector = Collector(files={"accepted": audio("jfk_voice.ogg"), "refused": audio("jfk.m4a")},
                          hold_fetch=asyncio.Event())
    with mounted_broken_disk(tmp_path) as disk:
        svc = _service(settings, tiny_engine, collector, disk.path)
        async with svc:
            accepted = await svc.submit(collector.request("accepted", chat="A"))
            await until(lambda: "accepted" in collector.fetches, "the accepted note to be downloading")
            disk.fail()

            with pytest.raises(StorageUnavailable) as refused:
                await svc.submit(collector.request("refused", chat="B"))
            assert refused.value.user_message == (
                "I can't take new recordings right now: I can't write to my storage. Please try again later.")
            with pytest.raises(StorageUnavailable) as not_saved:
                await asyncio.to_thread(svc.preferences.set, "fake", "B", "format", "srt")
            assert not_saved.value.user_message.startswith("I can't save settings right now")

            assert collector.hold_fetch is not None
            collector.hold_fetch.set()
            (answer,) = await collector.wait_for(1, timeout=DEADLINE_S)
            await svc.wait_idle()
            assert answer.job_id == accepted.id
            assert isinstance(answer.outcome, Transcript)
            assert wer(JFK, answer.outcome.text) <= 0.15

        disk.repair()
        collector.hold_fetch = None
        async with _service(settings, tiny_engine, collector, disk.path) as svc:
            assert await svc.resume("fake") == 1
            await collector.wait_for(2, timeout=DEADLINE_S)
            await svc.wait_idle()
            assert svc.journal.states() == {accepted.id: "delivered"}


def test_a_read_only_data_dir_at_start_is_one_sentence_naming_it(settings: Settings, small_disk: SmallDisk) -> None:
    small_disk.read_only()
    with pytest.raises(DataDirUnavailable) as refused:
        TranscriptionService(settings=settings.model_copy(update={"data_dir": small_disk.path / "chatscribe"}))
    assert refused.value.user_message.startswith(
        f"The data dir {small_disk.path / 'chatscribe'} cannot be used (Read-only file system)")


def test_a_full_disk_at_commit_refuses_a_settings_update_with_a_sentence_and_the_same_store_works_once_space_returns(
    small_disk: SmallDisk
) -> None:
    """In WAL mode a change is written to disk at COMMIT, so a full disk shows there. SQLite has then
    rolled the transaction back by itself: update() must give the settings sentence (not "cannot
    rollback - no transaction is active"), and the same Preferences must save again once space returns."""
    path = small_disk.path / "preferences.sqlite3"
    preferences = Preferences(path)
    try:
        preferences.set("fake", "A", "format", "txt")
        small_disk.fill()

        with pytest.raises(StorageUnavailable) as refused:
            preferences.update("fake", "A", "format", lambda stored: "srt")
        assert refused.value.user_message == (
            "I can't save settings right now: my storage is full. Please try again later.")
        assert preferences.get_all("fake", "A") == {"format": "txt"}

        small_disk.free()
        preferences.set("fake", "A", "language", "de")
        preferences.update("fake", "A", "format", lambda stored: "srt")
        assert preferences.get_all("fake", "A") == {"format": "srt", "language": "de"}
    finally:
        preferences.close()
    reopened = Preferences(path)  # committed, not left in a transaction of the first connection
    try:
        assert reopened.get_all("fake", "A") == {"format": "srt", "language": "de"}
    finally:
        reopened.close()
