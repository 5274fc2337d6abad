"""Telegram's draft messages (Bot API sendMessageDraft) as the live status of private chats: the real
python-telegram-bot against the fake Bot API, with and without the method, in private chats and groups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from chatscribe.adapters import telegram as adapter
from chatscribe.bots.telegram_bot import TelegramBot
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.keys import content_hash, transcript_key
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from tests.bots.test_telegram_bot import GROUP, PRIVATE, send, start_bot
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as api:
        api.drafts = True
        yield api


@pytest.fixture
async def bot(fake: FakeTelegram, service: TranscriptionService) -> AsyncIterator[TelegramBot]:
    running = await start_bot(fake, service)
    yield running
    await running.stop()


def _job(job_id: str, chat_id: int) -> Job:
    async def fetch(limit: int) -> bytes:
        raise AssertionError("not fetched")

    request = MediaRequest(platform="telegram", chat_id=str(chat_id), user_id="1", fetch=fetch,
                           reference={"chat_id": str(chat_id), "message_id": "1"})
    return Job(id=job_id, request=request, options=TranscribeOptions())


def _live(fraction: float, text: str) -> ProgressUpdate:
    return ProgressUpdate("transcribing", fraction=fraction, text=text)


async def test_a_private_chat_sees_its_live_status_as_a_draft_and_a_group_as_edits(
    fake: FakeTelegram, bot: TelegramBot,
) -> None:
    private, group = _job("p1", PRIVATE), _job("g1", GROUP)
    for n, fraction in enumerate((0.1, 0.3, 0.5)):
        await bot.delivery.progress(private, _live(fraction, "ask not" + " more" * n))
        await bot.delivery.progress(group, _live(fraction, "ask not" + " more" * n))

    drafts = fake.calls_to("sendMessageDraft")
    assert [c.params["chat_id"] for c in drafts] == [PRIVATE], "one draft: the others came within 3 s"
    assert drafts[0].params["text"] == "Transcribing… 10%\n\nask not"
    assert int(drafts[0].params["draft_id"]) != 0
    assert [c.params["chat_id"] for c in fake.calls_to("sendMessage")] == [GROUP], \
        "the group's status is a message; the private chat has none"


async def test_without_drafts_in_the_bot_api_a_private_chat_gets_a_status_message(
    fake: FakeTelegram, bot: TelegramBot,
) -> None:
    fake.drafts = False  # an older Bot API server: sendMessageDraft is 404
    first, second = _job("p1", PRIVATE), _job("p2", PRIVATE + 1)
    await bot.delivery.progress(first, _live(0.1, "ask not"))
    await bot.delivery.progress(second, _live(0.1, "what your country"))
    assert len(fake.calls_to("sendMessageDraft")) == 1, "asked once, then not again"
    assert [c.params["text"] for c in fake.calls_to("sendMessage")] == [
        "Transcribing… 10%\n\nask not", "Transcribing… 10%\n\nwhat your country"]


async def test_a_long_voice_note_in_a_private_chat_streams_its_words_as_drafts_then_the_answer(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    note = audio("multilingual_voice.ogg")  # a minute: two windows, the first one's words arrive early
    await send(fake, service, fake.voice(note, chat_id=PRIVATE))

    answer = fake.bot_messages(PRIVATE)
    drafts = [c for c in fake.calls_to("sendMessageDraft") if c.params["chat_id"] == PRIVATE]
    live = [c.params["text"] for c in drafts if "\n\n" in c.params["text"]]
    assert live, "a draft before the answer showed words already decoded"
    words = live[0].split("\n\n", 1)[1]
    assert len(words.split()) >= 3
    assert answer[0]["text"].startswith(words), "the words shown are the start of the transcript"
    assert fake.calls_to("editMessageText") == [], "no status message: the answer comes as new messages"
    assert {int(c.params["draft_id"]) for c in drafts} == {int(drafts[0].params["draft_id"])}, \
        "one draft, updated"
    times = [c.at for c in drafts]
    assert all(later - earlier >= 2.9 for earlier, later in zip(times, times[1:], strict=False)), "at most one per 3 s"
    assert drafts[-1].at < fake.calls_to("sendMessage")[0].at, "the answer ends the drafts"

    cached = service.cache.get(transcript_key(service.runner.model_id, TranscribeOptions(), content_hash(note)))
    assert cached is not None
    unchanged = adapter.render_transcript(cached, bot.delivery.sender._chat_settings(PRIVATE),  # type: ignore[attr-defined]
                                          max_parts=service.settings.max_parts, file_stem="transcript")
    assert [m.get("text") for m in answer] == [getattr(part, "text", None) for part in unchanged], \
        "the answer is what it would have been without live text"
