"""The Telegram bot end to end: the real python-telegram-bot Application talking HTTP to a fake Bot API
on 127.0.0.1, the real tiny.en model, the shared test audio, SQLite files in a temp data dir."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatscribe.adapters import telegram as adapter
from chatscribe.adapters.telegram import ADMINS_ONLY, LOCAL_SERVER_HINT, NO_SPEECH, NOT_ALLOWED
from chatscribe.bots.http import HttpServer, create_app
from chatscribe.bots.telegram_bot import SECRET_HEADER, WEBHOOK_PATH, TelegramBot, TelegramSettings
from chatscribe.core.config import Settings, load
from chatscribe.core.errors import ConfigError, UnacceptedFormat
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.keys import content_hash, transcript_key
from chatscribe.core.media import ACCEPTED_FORMATS, MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from chatscribe.core.text import utf16_units
from chatscribe.core.transcript import Segment, Transcript
from tests.fakes.telegram_api import FakeTelegram
from tests.ports import free_port
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
PRIVATE = 42
GROUP = -1001234


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as api:
        yield api


def telegram_settings(fake: FakeTelegram, **overrides: Any) -> TelegramSettings:
    return TelegramSettings(_env_file=None, bot_token=fake.token, base_url=fake.base_url,  # type: ignore[call-arg]
                            base_file_url=fake.base_file_url, **overrides)


async def start_bot(fake: FakeTelegram, service: TranscriptionService, **overrides: Any) -> TelegramBot:
    bot = TelegramBot(settings=telegram_settings(fake, **overrides), service=service)
    await bot.start()
    await service.resume(bot.platform)
    return bot


@pytest.fixture
async def bot(fake: FakeTelegram, service: TranscriptionService) -> AsyncIterator[TelegramBot]:
    running = await start_bot(fake, service)
    yield running
    await running.stop()


async def settle(fake: FakeTelegram, service: TranscriptionService, update_id: int) -> None:
    """Until the bot acknowledged the update (so its job is journaled) and every job was answered."""
    await fake.wait_for(lambda: fake.acknowledged_below > update_id)
    await service.wait_idle()


async def send(fake: FakeTelegram, service: TranscriptionService, message: dict[str, Any]) -> None:
    await settle(fake, service, await fake.push(message))


def last_text(fake: FakeTelegram, chat_id: int) -> str:
    messages = fake.bot_messages(chat_id)
    assert messages, "the bot sent nothing to the chat"
    return str(messages[-1].get("text") or messages[-1].get("caption"))


async def test_voice_note_gets_transcript_as_reply_via_status_message(
    fake: FakeTelegram, service: TranscriptionService, audio: Callable[[str], bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = TelegramBot(settings=telegram_settings(fake), service=service)
    await bot.start()
    try:
        voice = fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE)
        await send(fake, service, voice)
    finally:
        await bot.stop()

    answers = fake.bot_messages(PRIVATE)
    assert len(answers) == 1, "the status message becomes the answer: one message, no flood"
    answer = answers[0]
    assert wer(JFK, answer["text"]) < 0.3
    assert answer["reply_to_message"]["message_id"] == voice["message_id"]
    assert fake.calls_to("sendMessage")[0].params["text"].startswith("Transcribing")
    assert fake.calls_to("editMessageText"), "the status message was edited into the transcript"
    assert fake.calls_to("sendChatAction")
    assert fake.downloads[voice["voice"]["file_unique_id"]] == 1
    assert {c.method for c in fake.calls} >= {"getMe", "setMyCommands", "deleteWebhook", "getUpdates"}
    assert fake.token not in caplog.text
    assert fake.token.split(":")[1] not in caplog.text


async def test_job_is_journaled_before_the_update_is_acknowledged(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    jobs_at_ack: list[int] = []
    update_id = 0

    def on_ack() -> bool:
        if fake.acknowledged_below > update_id and not jobs_at_ack:
            jobs_at_ack.append(len(service.journal.states()))
        return bool(jobs_at_ack)

    update_id = await fake.push(fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
    await fake.wait_for(on_ack)
    assert jobs_at_ack == [1]
    await service.wait_idle()
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3


async def test_video_note_is_transcribed(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    await send(fake, service, fake.video_note(audio("jfk_video_note.mp4"), chat_id=PRIVATE))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3


async def test_audio_document_is_transcribed_and_other_documents_are_ignored(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    await send(fake, service, fake.document(b"%PDF-1.4", chat_id=PRIVATE, file_name="a.pdf",
                                            mime_type="application/pdf"))
    assert fake.bot_messages(PRIVATE) == []
    await send(fake, service, fake.document(audio("jfk.m4a"), chat_id=PRIVATE, file_name="memo.m4a",
                                            mime_type="audio/mp4"))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3


async def test_silence_answers_no_speech_detected(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    await send(fake, service, fake.voice(audio("silence_10s.ogg"), chat_id=PRIVATE, duration=10))
    assert last_text(fake, PRIVATE) == NO_SPEECH


async def test_random_bytes_get_a_clear_answer_and_the_bot_keeps_serving(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    await send(fake, service, fake.voice(audio("random_bytes.ogg"), chat_id=PRIVATE))
    assert last_text(fake, PRIVATE) == UnacceptedFormat(", ".join(ACCEPTED_FORMATS.values())).user_message
    assert "Traceback" not in last_text(fake, PRIVATE)
    await send(fake, service, fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3


async def test_same_file_unique_id_is_answered_from_cache_without_download(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    data = audio("jfk_voice.ogg")
    await send(fake, service, fake.voice(data, chat_id=PRIVATE, unique_id="AgADsame"))
    first = last_text(fake, PRIVATE)
    forwarded = fake.voice(data, chat_id=PRIVATE, unique_id="AgADsame")  # new file_id, same unique id
    await send(fake, service, forwarded)
    assert len(fake.calls_to("sendMessage")) == 2
    assert last_text(fake, PRIVATE) == first
    assert fake.downloads["AgADsame"] == 1
    assert len(fake.calls_to("getFile")) == 1
    # In another chat file ids are not shared (a conversation's `forget` relies on that): the file is
    # downloaded once more and its bytes are answered from the cache, without transcribing it again.
    await send(fake, service, fake.voice(data, chat_id=PRIVATE + 1, unique_id="AgADsame"))
    assert last_text(fake, PRIVATE + 1) == first
    assert fake.downloads["AgADsame"] == 2
    assert service.metrics.cache_hits.labels("content")._value.get() == 1


def _long_transcript(units: int) -> Transcript:
    """A transcript longer than Telegram's message limit, with characters that take two UTF-16 units."""
    sentences = [f"Sentence {i} 🎙️ {JFK}" for i in range(units // len(JFK) + 1)]
    segments = tuple(Segment(start=i * 5.0, end=i * 5.0 + 5.0, text=" " + s) for i, s in enumerate(sentences))
    return Transcript(segments=segments, language="en", language_probability=1.0,
                      duration_s=len(segments) * 5.0, model="tiny.en")


async def _seed_cache(service: TranscriptionService, unique_id: str, transcript: Transcript) -> None:
    # Reaching 4096 UTF-16 units takes about seven minutes of speech: too slow to transcribe in a test,
    # so the long transcript is put where an earlier transcription of this file would have left it.
    service.cache.alias("telegram", unique_id, "hash-of-" + unique_id)
    service.cache.put(transcript_key(service.runner.model_id, TranscribeOptions(), "hash-of-" + unique_id), transcript)


async def test_long_transcript_is_split_under_the_limit_without_losing_text(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot,
) -> None:
    transcript = _long_transcript(9000)
    await _seed_cache(service, "AgADlong", transcript)
    await send(fake, service, fake.voice(b"never downloaded", chat_id=PRIVATE, unique_id="AgADlong"))
    texts = [m["text"] for m in fake.bot_messages(PRIVATE)]
    assert len(texts) == 3
    assert all(utf16_units(t) <= 4096 for t in texts)
    assert "".join(texts) == transcript.text
    assert fake.downloads["AgADlong"] == 0


async def test_very_long_transcript_comes_as_a_file_with_a_preview(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot,
) -> None:
    transcript = _long_transcript(30000)
    await _seed_cache(service, "AgADhuge", transcript)
    await send(fake, service, fake.voice(b"never downloaded", chat_id=PRIVATE, unique_id="AgADhuge"))
    preview, document = fake.bot_messages(PRIVATE)
    assert utf16_units(preview["text"]) < 1000
    assert transcript.text.startswith(preview["text"].removesuffix(" …"))
    assert document["document"]["file_name"] == "transcript.txt"
    uploaded = fake.calls_to("sendDocument")[0].params["document"]
    assert uploaded["data"].decode() == transcript.text


async def test_flood_control_on_first_send_is_waited_out(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    fake.fail_next("sendMessage", 429, retry_after=1)
    await send(fake, service, fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3
    assert len(fake.calls_to("sendMessage")) >= 2  # the refused one and the retry


async def test_answer_arrives_when_the_original_message_was_deleted(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    voice = fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE)
    fake.delete(voice)
    await send(fake, service, voice)
    answer = fake.bot_messages(PRIVATE)[-1]
    assert wer(JFK, answer["text"]) < 0.3
    assert "reply_to_message" not in answer


async def test_file_over_20_mb_is_explained_without_download(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    voice = fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE, size=25_000_000)
    await send(fake, service, voice)
    answer = last_text(fake, PRIVATE)
    assert "25.0 MB" in answer
    assert "20 MB" in answer
    assert LOCAL_SERVER_HINT in answer
    assert fake.calls_to("getFile", "download") == []


async def test_local_bot_api_server_accepts_files_over_20_mb(
    fake: FakeTelegram, service: TranscriptionService, audio: Callable[[str], bytes],
) -> None:
    # Declared 25 MB, but the bytes are a voice note: the limit is the service's 100 MB, not Telegram's.
    fake.local_mode = True
    bot = await start_bot(fake, service, local_mode=True)
    try:
        await send(fake, service, fake.document(audio("jfk.m4a"), chat_id=PRIVATE, file_name="big.m4a",
                                                mime_type="audio/mp4", size=25_000_000))
        assert wer(JFK, last_text(fake, PRIVATE)) < 0.3
    finally:
        await bot.stop()


async def test_group_rules(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    data = audio("jfk_voice.ogg")
    group: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup"}
    voice = fake.voice(data, unique_id="AgADgroup", **group)
    await send(fake, service, voice)
    assert fake.bot_messages(GROUP) == [], "groups: no answer unless asked"

    await send(fake, service, fake.message(text="/transcribe", reply_to=voice, **group))
    answer = fake.bot_messages(GROUP)[-1]
    assert wer(JFK, answer["text"]) < 0.3
    assert answer["reply_to_message"]["message_id"] == voice["message_id"]

    await send(fake, service, fake.message(text="/auto on", user_id=7, **group))
    assert last_text(fake, GROUP) == ADMINS_ONLY
    fake.admins[GROUP] = {8}
    await send(fake, service, fake.message(text="/auto@scribe_test_bot on", user_id=8, **group))
    assert last_text(fake, GROUP).startswith("Automatic transcription: on.")
    assert "/setprivacy" in last_text(fake, GROUP), "the bot cannot see group messages in privacy mode"
    await send(fake, service, fake.voice(data, unique_id="AgADgroup", user_id=7, **group))
    assert wer(JFK, last_text(fake, GROUP)) < 0.3


async def test_allowed_chats_refuse_others_politely(
    fake: FakeTelegram, service: TranscriptionService, audio: Callable[[str], bytes],
) -> None:
    bot = await start_bot(fake, service, allowed_chats="777, @someone")
    try:
        await send(fake, service, fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
        assert last_text(fake, PRIVATE) == NOT_ALLOWED
        assert fake.calls_to("getFile", "download") == []
        await send(fake, service, fake.voice(audio("jfk_voice.ogg"), chat_id=777))
        assert wer(JFK, last_text(fake, 777)) < 0.3
    finally:
        await bot.stop()


async def test_forget_deletes_the_chats_transcripts_and_settings(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    data = audio("jfk_voice.ogg")
    await send(fake, service, fake.message(chat_id=PRIVATE, text="/timestamps on"))
    await send(fake, service, fake.voice(data, chat_id=PRIVATE, unique_id="AgADforget"))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3
    assert len(fake.calls_to("download")) == 1

    await send(fake, service, fake.message(chat_id=PRIVATE, text="/forget"))
    assert last_text(fake, PRIVATE).startswith("Done: I've forgotten this conversation's data")
    await send(fake, service, fake.message(chat_id=PRIVATE, text="/settings"))
    assert "Timestamps: off" in last_text(fake, PRIVATE)
    # The same voice note forwarded again: nothing cached for this chat any more, so it is fetched anew.
    await send(fake, service, fake.voice(data, chat_id=PRIVATE, unique_id="AgADforget"))
    assert wer(JFK, last_text(fake, PRIVATE)) < 0.3
    assert len(fake.calls_to("download")) == 2


async def test_in_groups_only_admins_may_forget(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot,
) -> None:
    group: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup"}
    fake.admins[GROUP] = {8}
    await send(fake, service, fake.message(text="/format srt", user_id=8, **group))
    await send(fake, service, fake.message(text="/forget", user_id=7, **group))
    assert last_text(fake, GROUP) == ADMINS_ONLY
    assert service.preferences.get("telegram", str(GROUP), "format") == "srt"
    await send(fake, service, fake.message(text="/forget", user_id=8, **group))
    assert last_text(fake, GROUP).startswith("Done: I've forgotten")
    assert service.preferences.get("telegram", str(GROUP), "format") is None


async def test_chat_settings_survive_a_restart(
    fake: FakeTelegram, settings: Settings, tiny_engine: object, audio: Callable[[str], bytes],
) -> None:
    async with TranscriptionService(settings=settings, engine=tiny_engine) as first:  # type: ignore[arg-type]
        bot = await start_bot(fake, first)
        await send(fake, first, fake.message(chat_id=PRIVATE, text="/format srt"))
        await send(fake, first, fake.message(chat_id=PRIVATE, text="/vocab Kennedy, Americans"))
        await send(fake, first, fake.message(chat_id=PRIVATE, text="/language klingon"))
        assert "don't know" in last_text(fake, PRIVATE)
        await bot.stop()

    async with TranscriptionService(settings=settings, engine=tiny_engine) as second:  # type: ignore[arg-type]
        bot = await start_bot(fake, second)
        await send(fake, second, fake.message(chat_id=PRIVATE, text="/settings"))
        shown = last_text(fake, PRIVATE)
        assert "Format: srt" in shown
        assert "Vocabulary: Kennedy, Americans" in shown
        await send(fake, second, fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
        await bot.stop()
    uploaded = fake.calls_to("sendDocument")[-1].params["document"]
    assert uploaded["filename"] == "transcript.srt"
    assert "00:00:00,000 --> " in uploaded["data"].decode()


async def test_webhook_checks_the_secret_token(
    fake: FakeTelegram, settings: Settings, service: TranscriptionService, audio: Callable[[str], bytes],
) -> None:
    bot = await start_bot(fake, service, webhook_url="https://bot.example/telegram/webhook",
                          webhook_secret="s3cret-token")
    assert fake.webhook is not None
    assert fake.webhook["secret_token"] == "s3cret-token"
    assert fake.calls_to("getUpdates") == [], "webhook mode does not poll"
    server = HttpServer(create_app(service=service, settings=settings, bots=[bot]), "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}{WEBHOOK_PATH}"
    update = fake.update(fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
            assert service.journal.states() == {}
            assert fake.calls_to("getFile", "sendMessage") == []
            async with http.post(url, json=update, headers={SECRET_HEADER: "s3cret-token"}) as response:
                assert response.status == 200
            assert len(service.journal.states()) == 1, "journaled before the 200"
        await service.wait_idle()
        assert wer(JFK, last_text(fake, PRIVATE)) < 0.3
    finally:
        await server.stop()
        await bot.stop()


async def test_unfinished_job_is_answered_after_a_restart(
    fake: FakeTelegram, settings: Settings, tiny_engine: object, audio: Callable[[str], bytes],
) -> None:
    # Telegram fails while the answer is being sent, and the process stops before a retry.
    fake.fail_next("editMessageText", 502, retry_after=None, description="Bad Gateway", times=5)
    async with TranscriptionService(settings=settings, engine=tiny_engine) as first:  # type: ignore[arg-type]
        bot = await start_bot(fake, first)
        await fake.push(fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
        async with asyncio.timeout(60):
            while list(first.journal.states().values()) != ["transcribed"]:
                await asyncio.sleep(0.05)
        await bot.stop()
        await first.aclose(grace_s=0)
    status_messages = fake.bot_messages(PRIVATE)
    assert [m["text"] for m in status_messages] == ["Transcribing… 0%"]

    fake.clear_failures()
    async with TranscriptionService(settings=settings, engine=tiny_engine) as second:  # type: ignore[arg-type]
        bot = await start_bot(fake, second)
        await second.wait_idle()
        await bot.stop()
    answers = fake.bot_messages(PRIVATE)
    assert len(answers) == 1, "the status message from before the restart became the answer"
    assert answers[0]["message_id"] == status_messages[0]["message_id"]
    assert wer(JFK, answers[0]["text"]) < 0.3


async def test_chatscribe_run_telegram_subprocess_answers_a_voice_note(
    fake: FakeTelegram, tmp_path: Path, audio: Callable[[str], bytes],
) -> None:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BASE_URL": fake.base_url,
        "TELEGRAM_BASE_FILE_URL": fake.base_file_url,
        "CHATSCRIBE_DATA_DIR": str(tmp_path / "data"),  # tiny.en itself comes from the bundled package
        "CHATSCRIBE_MODEL": "tiny.en",
        "CHATSCRIBE_DEVICE": "cpu",
        "CHATSCRIBE_HTTP_PORT": str(free_port()),
    }
    log_path = tmp_path / "chatscribe.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, watched through the fake
        [sys.executable, "-m", "chatscribe", "run", "telegram"], env=env, cwd=tmp_path,
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        await fake.wait_for(lambda: fake.calls_to("getUpdates") or process.poll() is not None, timeout=120)
        assert process.poll() is None, "chatscribe run exited early"
        await fake.push(fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
        await fake.wait_for(
            lambda: any(wer(JFK, m.get("text", "")) < 0.3 for m in fake.bot_messages(PRIVATE)), timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log_file.close()
    output = log_path.read_text(errors="replace")
    assert process.returncode == 0, output
    assert fake.token not in output
    assert fake.token.split(":")[1] not in output


async def test_recording_declared_too_long_is_refused_without_download(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    await send(fake, service, fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE, duration=7200))
    assert last_text(fake, PRIVATE) == "That recording is too long (2.0 h): the limit is 60 min."
    assert fake.calls_to("getFile", "download") == []


def _job(job_id: str, chat_id: int, reply_to: int) -> Job:
    async def fetch(limit: int) -> bytes:
        raise AssertionError("not fetched")

    request = MediaRequest(platform="telegram", chat_id=str(chat_id), user_id="1", fetch=fetch,
                           reference={"chat_id": str(chat_id), "message_id": str(reply_to)})
    return Job(id=job_id, request=request, options=TranscribeOptions())


async def test_status_message_is_edited_at_most_every_three_seconds_per_chat(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot,
) -> None:
    first, other = _job("j1", PRIVATE, 1), _job("j2", PRIVATE + 1, 2)
    for fraction in (0.0, 0.2, 0.4, 0.6):
        await bot.delivery.progress(first, ProgressUpdate("transcribing", fraction=fraction))
    await bot.delivery.progress(other, ProgressUpdate("queued", position=1))
    assert [c.params["text"] for c in fake.calls_to("sendMessage")] == [
        "Transcribing… 0%", "Waiting to transcribe (position 1 in the queue)…"]
    assert fake.calls_to("editMessageText") == [], "updates within 3 s of the last one are not shown"
    assert fake.final_texts(PRIVATE) == ["Transcribing… 0%"]


async def test_a_message_is_not_accepted_twice_when_the_acknowledgement_was_lost(
    fake: FakeTelegram, settings: Settings, tiny_engine: object, audio: Callable[[str], bytes],
) -> None:
    async with TranscriptionService(settings=settings, engine=tiny_engine) as first:  # type: ignore[arg-type]
        bot = await start_bot(fake, first)
        fake.lose_acknowledgements = True  # the process "dies" before Telegram hears of the new offset
        update_id = await fake.push(fake.voice(audio("jfk_voice.ogg"), chat_id=PRIVATE))
        await fake.wait_for(lambda: any(int(c.params.get("offset") or 0) > update_id
                                        for c in fake.calls_to("getUpdates")))
        await first.wait_idle()
        await bot.stop()
    assert fake.acknowledged_below <= update_id, "Telegram would send this update again"

    fake.lose_acknowledgements = False
    async with TranscriptionService(settings=settings, engine=tiny_engine) as second:  # type: ignore[arg-type]
        bot = await start_bot(fake, second)
        await settle(fake, second, update_id)
        await bot.stop()
    answers = [m for m in fake.bot_messages(PRIVATE) if wer(JFK, m["text"]) < 0.3]
    assert len(answers) == 1


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("TELEGRAM_ALLOWED_CHATS", "123, team", "TELEGRAM_ALLOWED_CHATS"),
    ("TELEGRAM_WEBHOOK_URL", "http://bot.example/telegram/webhook", "TELEGRAM_WEBHOOK_URL"),
    ("TELEGRAM_WEBHOOK_SECRET", "has spaces", "TELEGRAM_WEBHOOK_SECRET"),
])
def test_wrong_settings_are_named_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load(TelegramSettings, _env_file=None)


def test_webhook_without_secret_is_refused(fake: FakeTelegram, service: TranscriptionService) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        TelegramBot(settings=telegram_settings(fake, webhook_url="https://bot.example/telegram/webhook"),
                    service=service)


async def send_long_note(fake: FakeTelegram, service: TranscriptionService,
                         audio: Callable[[str], bytes]) -> tuple[bytes, list[dict[str, Any]]]:
    """A minute-long voice note (two windows: the first one's words arrive early) sent in the private chat,
    and the bot's messages there once it is answered."""
    note = audio("multilingual_voice.ogg")
    await send(fake, service, fake.voice(note, chat_id=PRIVATE))
    return note, fake.bot_messages(PRIVATE)


def assert_answer_without_live_text(service: TranscriptionService, bot: TelegramBot, note: bytes,
                                    answer: list[dict[str, Any]]) -> None:
    cached = service.cache.get(transcript_key(service.runner.model_id, TranscribeOptions(), content_hash(note)))
    assert cached is not None
    unchanged = adapter.render_transcript(cached, bot.delivery.sender._chat_settings(PRIVATE),  # type: ignore[attr-defined]
                                          max_parts=service.settings.max_parts, file_stem="transcript")
    assert [m.get("text") for m in answer] == [getattr(part, "text", None) for part in unchanged], \
        "the answer is what it would have been without live text"


async def test_a_long_voice_note_shows_its_words_in_the_status_while_it_is_transcribed(
    fake: FakeTelegram, service: TranscriptionService, bot: TelegramBot, audio: Callable[[str], bytes],
) -> None:
    note, answer = await send_long_note(fake, service, audio)
    status_id = answer[0]["message_id"]
    edits = [c for c in fake.calls_to("editMessageText") if c.params["message_id"] == status_id]
    before_answer = [c for c in fake.calls_to("sendMessage")[:1]] + edits[:-1]
    live = [c.params["text"] for c in before_answer if "\n\n" in c.params["text"]]
    assert live, "a status before the answer showed words already decoded"
    assert all(text.startswith("Transcribing…") for text in live)
    words = live[0].split("\n\n", 1)[1]
    assert len(words.split()) >= 3
    assert answer[0]["text"].startswith(words), "the words shown are the start of the transcript"
    times = [c.at for c in before_answer]
    assert all(later - earlier >= 2.9 for earlier, later in zip(times, times[1:], strict=False)), "at most one per 3 s"
    assert_answer_without_live_text(service, bot, note, answer)
