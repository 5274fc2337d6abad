"""Telegram's draft messages (Bot API sendMessageDraft) as the live status of private chats: the real
python-telegram-bot against the fake Bot API, with and without the method, in private chats and groups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from chatscribe.bots.telegram_bot import TelegramBot
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.service import TranscriptionService
from tests.bots import test_telegram_bot as telegram_tests
from tests.bots.test_telegram_bot import GROUP, PRIVATE, assert_answer_without_live_text, send_long_note
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as api:
        api.drafts = True
        yield api


bot = telegram_tests.bot
"""The same bot fixture, started on this module's `fake` (drafts on)."""


def _job(job_id: str, chat_id: int) -> Job:
    return telegram_tests._job(job_id, chat_id, reply_to=1)


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


async def test_a_draft_refused_in_one_chat_makes_its_status_a_message_and_keeps_drafts_elsewhere(
    fake: FakeTelegram, bot: TelegramBot,
) -> None:
    """A 400 for one chat (say, a privacy setting) is that chat's answer, not the Bot API's: the next private
    chat still gets its live status as a draft."""
    fake.fail_next("sendMessageDraft", 400, retry_after=None, description="Bad Request: draft refused in this chat")
    first, second = _job("p1", PRIVATE), _job("p2", PRIVATE + 1)
    await bot.delivery.progress(first, _live(0.1, "ask not"))
    await bot.delivery.progress(second, _live(0.1, "what your country"))
    assert [c.params["chat_id"] for c in fake.calls_to("sendMessageDraft")] == [PRIVATE, PRIVATE + 1]
    assert [(c.params["chat_id"], c.params["text"]) for c in fake.calls_to("sendMessage")] == [
        (PRIVATE, "Transcribing… 10%\n\nask not")], "the refused chat's status is a message, the other's a draft"


async def test_a_long_voice_note_in_a_private_chat_streams_its_words_as_drafts_then_the_answer(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    note, answer = await send_long_note(fake, service, audio)
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
    assert_answer_without_live_text(service, bot, note, answer)
