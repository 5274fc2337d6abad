"""The Discord bot end to end: the real discord.py client against the fake Discord, the real tiny.en model."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av
import numpy as np
import pytest

from chatscribe.adapters.discord import NO_SPEECH, NOTHING_FOUND, attachment_key
from chatscribe.bots.discord_bot import (
    AUTO_ANSWERS,
    NO_HISTORY,
    NOT_ALLOWED,
    SERVER_NOT_ALLOWED,
    DiscordBot,
    DiscordSettings,
)
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import ConfigError
from chatscribe.core.media import SAMPLE_RATE, MediaRequest
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import render
from tests.fakes.discord_api import FLAG_EPHEMERAL, Call, FakeDiscord
from tests.ports import free_port
from tests.waiting import until
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


def discord_settings(fake: FakeDiscord, **overrides: object) -> DiscordSettings:
    values: dict[str, object] = {"bot_token": fake.token, "api_base_url": fake.base_url, **overrides}
    return DiscordSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def bot(fake: FakeDiscord, service: TranscriptionService) -> AsyncIterator[DiscordBot]:
    bot = DiscordBot(service=service, settings=discord_settings(fake), guild_ready_timeout=0.05)
    await bot.start()
    yield bot
    await bot.stop()


def channel_posts(fake: FakeDiscord) -> str:
    return f"/channels/{fake.channel_id}/messages"


async def answers(fake: FakeDiscord, count: int = 1, timeout: float = 60) -> list[Call]:
    return [c for c in await fake.wait_calls("POST", channel_posts(fake), count, timeout) if c.body]


LONG_WAIT_S = 240
"""Three minutes of speech, its German parts tried twice by tiny.en (the coverage check), on a busy 2-core CI."""


def webhook_path(fake: FakeDiscord, interaction: dict[str, object]) -> str:
    return f"/webhooks/{fake.application_id}/{interaction['token']}"


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


# -- !transcribe ----------------------------------------------------------------------------------------


async def test_transcribe_command_answers_with_the_attachments_text(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    attachment = fake.attachment(audio("jfk.m4a"), "memo.m4a", "audio/mp4")
    command = await fake.user_message("!transcribe", attachments=[attachment])

    (answer,) = await answers(fake)

    assert wer(JFK, answer.body["content"]) < 0.2
    assert str(answer.body["message_reference"]["message_id"]) == command["id"]
    # no ping for the author, and nobody else either
    assert answer.body["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert fake.find("POST", f"/channels/{fake.channel_id}/typing"), "the channel shows the bot typing"
    assert fake.identifies == 1
    assert {c["name"] for c in fake.commands["global"]} == {"transcribe", "Transcribe", "chatscribe"}


async def test_transcribe_as_a_reply_uses_the_replied_to_message(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    voice = await fake.user_message(attachments=[fake.attachment(audio("jfk.webm"), "clip.webm", "video/webm")],
                                    author=fake.moderator)
    command = await fake.user_message("!transcribe", reply_to=voice)

    (answer,) = await answers(fake)

    assert wer(JFK, answer.body["content"]) < 0.2
    assert str(answer.body["message_reference"]["message_id"]) == command["id"]


async def test_transcribe_alone_finds_the_latest_audio_in_the_channel(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    await fake.user_message("!transcribe")
    (nothing,) = await answers(fake)
    assert nothing.body["content"] == NOTHING_FOUND

    await fake.user_message(attachments=[fake.attachment(audio("jfk.flac"), "speech.flac", "audio/flac")])
    await fake.user_message("what did he say?")
    await fake.user_message("!transcribe")

    answer = (await answers(fake, 2))[1]
    assert wer(JFK, answer.body["content"]) < 0.2


async def test_transcribe_alone_without_history_access_says_what_to_do(fake: FakeDiscord, bot: DiscordBot) -> None:
    fake.forbid("GET", channel_posts(fake))
    await fake.user_message("!transcribe")
    (answer,) = await answers(fake)
    assert answer.body["content"] == NO_HISTORY


async def test_several_attachments_get_one_labelled_answer_each_in_order(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    first = fake.attachment(audio("silence_10s.ogg"), "quiet.ogg", "audio/ogg")
    second = fake.attachment(audio("jfk_voice.ogg"), "speech.ogg", "audio/ogg")
    await fake.user_message("!transcribe", attachments=[first, second])

    replies = await answers(fake, 2)

    quiet = next(c for c in replies if c.body["content"].startswith("**quiet.ogg**"))
    speech = next(c for c in replies if c.body["content"].startswith("**speech.ogg**"))
    assert quiet.body["content"].endswith(NO_SPEECH)
    assert wer(JFK, speech.body["content"].removeprefix("**speech.ogg**\n")) < 0.2


# -- voice messages ---------------------------------------------------------------------------------------


async def test_servers_not_in_allowed_guilds_are_refused_politely(
        fake: FakeDiscord, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    other_server = str(int(fake.guild_id) + 1)
    bot = DiscordBot(service=service, settings=discord_settings(fake, allowed_guilds=other_server),
                     guild_ready_timeout=0.05)
    await bot.start()
    try:
        await fake.user_message(  # ignored, as Telegram ignores voice notes in chats it is not allowed in
            attachments=[fake.attachment(audio("jfk_voice.ogg"), "voice-message.ogg", "audio/ogg", voice=True)],
            voice=True)
        command = await fake.user_message("!transcribe")
        (refusal,) = await answers(fake)
        assert refusal.body["content"] == SERVER_NOT_ALLOWED
        assert str(refusal.body["message_reference"]["message_id"]) == command["id"]

        slash = await fake.slash_command("transcribe")
        (private,) = await fake.wait_calls("POST", f"/interactions/{slash['id']}/{slash['token']}/callback")
        assert private.body["data"]["content"] == SERVER_NOT_ALLOWED
        assert private.body["data"]["flags"] & FLAG_EPHEMERAL
        settings = await fake.slash_command("chatscribe", [{"name": "auto", "type": 1, "options": [
            {"name": "state", "type": 3, "value": "off"}]}], member=fake.member(fake.moderator, moderator=True))
        (refused,) = await fake.wait_calls("POST", f"/interactions/{settings['id']}/{settings['token']}/callback")
        assert refused.body["data"]["content"] == SERVER_NOT_ALLOWED
        await service.wait_idle()
    finally:
        await bot.stop()
    assert fake.downloads == []
    assert len(await answers(fake)) == 1
    assert service.preferences.get("discord", fake.guild_id, "auto_voice") is None


async def test_allowed_guilds_must_be_server_ids(fake: FakeDiscord) -> None:
    with pytest.raises(ValueError, match="numeric server ids"):
        discord_settings(fake, allowed_guilds="my-server")


async def test_voice_message_is_transcribed_automatically_until_switched_off(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    voice = await fake.user_message(
        attachments=[fake.attachment(audio("jfk_voice.ogg"), "voice-message.ogg", "audio/ogg", voice=True)],
        voice=True)
    (answer,) = await answers(fake)
    assert wer(JFK, answer.body["content"]) < 0.2
    assert str(answer.body["message_reference"]["message_id"]) == voice["id"]

    denied = await fake.slash_command("chatscribe", [{"name": "auto", "type": 1, "options": [
        {"name": "state", "type": 3, "value": "off"}]}])
    (refusal,) = await fake.wait_calls("POST", f"/interactions/{denied['id']}/{denied['token']}/callback")
    assert refusal.body["data"]["content"] == NOT_ALLOWED
    assert refusal.body["data"]["flags"] & FLAG_EPHEMERAL

    switched = await fake.slash_command("chatscribe", [{"name": "auto", "type": 1, "options": [
        {"name": "state", "type": 3, "value": "off"}]}], member=fake.member(fake.moderator, moderator=True))
    (confirmation,) = await fake.wait_calls("POST", f"/interactions/{switched['id']}/{switched['token']}/callback")
    assert confirmation.body["data"]["content"] == AUTO_ANSWERS["off"]

    second = await fake.user_message(
        attachments=[fake.attachment(audio("jfk_voice.ogg"), "voice-message.ogg", "audio/ogg", voice=True)],
        voice=True)
    command = await fake.user_message("!transcribe")  # on request it still works
    replies = await answers(fake, 2)
    await bot.service.wait_idle()
    replies = await answers(fake)
    assert len(replies) == 2
    assert str(replies[1].body["message_reference"]["message_id"]) == command["id"]
    assert wer(JFK, replies[1].body["content"]) < 0.2
    assert all(str(r.body["message_reference"]["message_id"]) != second["id"] for r in replies)


async def test_forget_deletes_the_servers_transcripts_and_settings(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    moderator = fake.member(fake.moderator, moderator=True)
    chosen = await fake.slash_command("chatscribe", [{"name": "format", "type": 1, "options": [
        {"name": "kind", "type": 3, "value": "srt"}]}], member=moderator)
    await fake.wait_calls("POST", f"/interactions/{chosen['id']}/{chosen['token']}/callback")
    attachment = fake.attachment(audio("jfk.m4a"), "memo.m4a", "audio/mp4")
    await fake.user_message("!transcribe", attachments=[attachment])
    (first,) = await answers(fake)
    assert wer(JFK, first.body["content"]) < 0.2
    await bot.service.wait_idle()
    assert len(fake.downloads) == 1
    assert bot.service.preferences.get("discord", fake.guild_id, "format") == "srt"

    denied = await fake.slash_command("chatscribe", [{"name": "forget", "type": 1, "options": []}])
    (refusal,) = await fake.wait_calls("POST", f"/interactions/{denied['id']}/{denied['token']}/callback")
    assert refusal.body["data"]["content"] == NOT_ALLOWED
    forget = await fake.slash_command("chatscribe", [{"name": "forget", "type": 1, "options": []}], member=moderator)
    (done,) = await fake.wait_calls("POST", webhook_path(fake, forget))
    assert done.body["content"].startswith("Done: I've forgotten this conversation's data")
    assert bot.service.preferences.get("discord", fake.guild_id, "format") is None

    await fake.user_message("!transcribe", attachments=[attachment])  # the same file again: fetched anew
    await answers(fake, 2)
    await bot.service.wait_idle()
    assert len(fake.downloads) == 2


# -- interactions -----------------------------------------------------------------------------------------


async def test_slash_command_defers_then_follows_up_privately(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    attachment = fake.attachment(audio("jfk_video_note.mp4"), "note.mp4", "video/mp4")
    interaction = await fake.slash_command(
        "transcribe", [{"name": "file", "type": 11, "value": attachment["id"]},
                       {"name": "ephemeral", "type": 5, "value": True}], attachments=[attachment])

    (followup,) = await fake.wait_calls("POST", webhook_path(fake, interaction))

    (callback,) = fake.find("POST", f"/interactions/{interaction['id']}/{interaction['token']}/callback")
    assert callback.body["type"] == 5, "deferred (thinking) first"
    assert fake.calls.index(callback) < fake.calls.index(followup)
    assert wer(JFK, followup.body["content"]) < 0.2
    assert followup.body["flags"] & FLAG_EPHEMERAL
    assert followup.body["allowed_mentions"]["parse"] == []


async def test_slash_command_with_unknown_language_explains(fake: FakeDiscord, bot: DiscordBot) -> None:
    interaction = await fake.slash_command("transcribe", [{"name": "language", "type": 3, "value": "klingon"}])
    (answer,) = await fake.wait_calls("POST", f"/interactions/{interaction['id']}/{interaction['token']}/callback")
    assert "klingon" in answer.body["data"]["content"]
    assert "Traceback" not in answer.body["data"]["content"]
    assert answer.body["data"]["flags"] & FLAG_EPHEMERAL, "only the one who asked sees the refusal"


async def test_slash_command_without_a_file_takes_the_latest_recording(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    await fake.user_message(attachments=[fake.attachment(audio("jfk.m4a"), "memo.m4a", "audio/mp4")])
    await fake.user_message("nice speech")
    interaction = await fake.slash_command("transcribe")

    (followup,) = await fake.wait_calls("POST", webhook_path(fake, interaction))

    assert wer(JFK, followup.body["content"]) < 0.2
    assert not (followup.body.get("flags") or 0) & FLAG_EPHEMERAL


async def test_context_menu_transcribes_the_message(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    message = await fake.user_message(attachments=[fake.attachment(audio("jfk.flac"), "jfk.flac", "audio/flac")])
    interaction = await fake.context_menu("Transcribe", message)

    (followup,) = await fake.wait_calls("POST", webhook_path(fake, interaction))

    (callback,) = fake.find("POST", f"/interactions/{interaction['id']}/{interaction['token']}/callback")
    assert callback.body["type"] == 5
    assert wer(JFK, followup.body["content"]) < 0.2
    assert not (followup.body.get("flags") or 0) & FLAG_EPHEMERAL


# -- bad input and limits ---------------------------------------------------------------------------------


async def test_random_bytes_then_a_good_file(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    await fake.user_message("!transcribe", attachments=[
        fake.attachment(audio("random_bytes.ogg"), "broken.ogg", "audio/ogg")])
    (refusal,) = await answers(fake)
    assert refusal.body["content"].startswith("I couldn't read that file")

    await fake.user_message("!transcribe", attachments=[fake.attachment(audio("jfk.m4a"), "ok.m4a", "audio/mp4")])
    answer = (await answers(fake, 2))[1]
    assert wer(JFK, answer.body["content"]) < 0.2


async def test_too_large_attachment_is_refused_without_downloading(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    huge = fake.attachment(audio("jfk_voice.ogg"), "huge.ogg", "audio/ogg", size=500_000_000)
    await fake.user_message("!transcribe", attachments=[huge])

    (refusal,) = await answers(fake)

    assert refusal.body["content"].startswith("That file is too large (500.0 MB)")
    assert huge["id"] not in fake.downloads


async def test_everyone_in_an_answer_pings_nobody(fake: FakeDiscord, bot: DiscordBot) -> None:
    # The answer quotes what it did not understand, so "@everyone" reaches the channel as text.
    await fake.user_message("!transcribe @everyone")

    (answer,) = await answers(fake)

    assert "@everyone" in answer.body["content"]
    (sent,) = fake.bot_messages()
    assert sent["mention_everyone"] is False
    assert sent["mentions"] == [], "the person who asked is not pinged either"


async def test_bot_authors_are_ignored(fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    await fake.user_message("!transcribe", author=fake.other_bot,
                            attachments=[fake.attachment(audio("jfk.m4a"), "a.m4a", "audio/mp4")])
    await fake.user_message(author=fake.other_bot, voice=True, attachments=[
        fake.attachment(audio("jfk_voice.ogg"), "v.ogg", "audio/ogg", voice=True)])
    await fake.user_message("!transcribe")  # a person's command: the bots' files are not theirs to pick

    await answers(fake)
    await bot.service.wait_idle()
    (only,) = await answers(fake)
    assert only.body["content"] == NOTHING_FOUND
    assert not fake.downloads


# -- long transcripts, rate limits, reconnects ------------------------------------------------------------


@pytest.fixture(scope="session")
def long_speech(audio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About three and a half minutes of real speech (the shared recordings joined), built in a temp dir."""
    # Enough English that tiny.en's text passes Discord's 2,000 characters with room to spare.
    pieces = [_decode(audio_dir / name) for name in ("multilingual.mp3", "jfk.flac", "multilingual.mp3",
                                                     "hotwords.mp3", "multilingual.mp3", "jfk.flac",
                                                     "hotwords.mp3")]
    return _encode_flac(np.concatenate(pieces))


@pytest.fixture(scope="module")
def long_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The long-transcript test's data dir."""
    return tmp_path_factory.mktemp("discord-long")


async def test_past_max_parts_the_transcript_comes_as_a_subtitle_file(
        fake: FakeDiscord, long_data_dir: Path, tiny_engine: FasterWhisperEngine, long_speech: bytes) -> None:
    settings = Settings(_env_file=None, data_dir=long_data_dir, model="tiny.en", device="cpu",  # type: ignore[call-arg]
                        max_parts=1)
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        bot = DiscordBot(service=service, settings=discord_settings(fake, status_after_s=3600),
                         guild_ready_timeout=0.05)
        await bot.start()
        try:
            chosen = await fake.slash_command("chatscribe", [{"name": "format", "type": 1, "options": [
                {"name": "kind", "type": 3, "value": "srt"}]}], member=fake.member(fake.moderator, moderator=True))
            await fake.wait_calls("POST", f"/interactions/{chosen['id']}/{chosen['token']}/callback")
            attachment = fake.attachment(long_speech, "long.flac", "audio/flac")
            await fake.user_message("!transcribe", attachments=[attachment])
            (answer,) = await answers(fake, timeout=LONG_WAIT_S)
            transcript = await service.cached(_cached_request(attachment["url"], fake.channel_id))
        finally:
            await bot.stop()

    assert transcript is not None
    (upload,) = answer.files
    assert upload.name == "transcript.srt"
    assert upload.data.decode() == render(transcript, "srt", marked=True)
    assert len(answer.body["content"]) <= 2000
    assert unescape(answer.body["content"]).startswith(transcript.text[:200])
    assert "attached" in answer.body["content"]


async def test_rate_limited_reply_is_retried(fake: FakeDiscord, bot: DiscordBot,
                                             audio: Callable[[str], bytes]) -> None:
    fake.rate_limit_next(channel_posts(fake), retry_after=0.2)
    await fake.user_message("!transcribe", attachments=[fake.attachment(audio("jfk.m4a"), "a.m4a", "audio/mp4")])

    calls = await fake.wait_calls("POST", channel_posts(fake), 2)

    assert calls[0].body == calls[1].body, "the same answer was sent again after the 429"
    assert len(fake.bot_messages()) == 1


async def test_gateway_disconnect_resumes_and_keeps_serving(
        fake: FakeDiscord, bot: DiscordBot, audio: Callable[[str], bytes]) -> None:
    await fake.drop_connection()
    await fake.user_message("!transcribe", attachments=[fake.attachment(audio("jfk.m4a"), "a.m4a", "audio/mp4")])
    await fake.connected()

    (answer,) = await answers(fake)

    assert fake.resumes == 1
    assert fake.identifies == 1
    assert wer(JFK, answer.body["content"]) < 0.2


async def test_commands_sync_to_the_configured_servers_for_instant_updates(
        fake: FakeDiscord, service: TranscriptionService) -> None:
    bot = DiscordBot(service=service, settings=discord_settings(fake, guild_ids=fake.guild_id),
                     guild_ready_timeout=0.05)
    await bot.start()
    try:
        assert bot.not_ready() is None
    finally:
        await bot.stop()
    assert bot.not_ready() == "discord: not connected"
    assert "global" not in fake.commands
    synced = {c["name"]: c for c in fake.commands[fake.guild_id]}
    assert set(synced) == {"transcribe", "Transcribe", "chatscribe"}
    assert synced["Transcribe"]["type"] == 3, "a message context-menu command"
    # Everyone may see the settings (`/chatscribe settings`); changing them is checked per call (Manage Server).
    assert synced["chatscribe"].get("default_member_permissions") is None
    subcommands = {o["name"]: o for o in synced["chatscribe"]["options"]}
    assert set(subcommands) == {"language", "translate", "vocab", "format", "timestamps", "speakers", "auto",
                                "replies", "settings", "forget", "channel"}
    assert {o["name"] for o in subcommands["channel"]["options"]} == {
        "language", "translate", "vocab", "format", "timestamps", "speakers", "auto", "replies", "reset"}
    options = {o["name"]: o for o in synced["transcribe"]["options"]}
    assert set(options) == {"file", "language", "translate", "ephemeral"}
    assert not any(o.get("required") for o in options.values())


async def test_a_wrong_token_or_missing_intent_is_explained(fake: FakeDiscord, service: TranscriptionService) -> None:
    wrong = DiscordBot(service=service, settings=discord_settings(fake, bot_token="not-the-token"))
    with pytest.raises(ConfigError, match="rejected DISCORD_BOT_TOKEN"):
        await wrong.start()
    await wrong.stop()

    fake.message_content_intent = False
    no_intent = DiscordBot(service=service, settings=discord_settings(fake), guild_ready_timeout=0.05)
    with pytest.raises(ConfigError, match="Message Content Intent"):
        await no_intent.start()
    await no_intent.stop()


async def test_token_never_reaches_the_logs(fake: FakeDiscord, bot: DiscordBot, caplog: pytest.LogCaptureFixture,
                                            audio: Callable[[str], bytes]) -> None:
    caplog.set_level("DEBUG")
    attachment = fake.attachment(audio("jfk.m4a"), "a.m4a", "audio/mp4")
    interaction = await fake.slash_command("transcribe", [{"name": "file", "type": 11, "value": attachment["id"]}],
                                           attachments=[attachment])
    await fake.wait_calls("POST", webhook_path(fake, interaction))
    assert fake.token not in caplog.text
    assert str(interaction["token"]) not in caplog.text


async def test_accepted_work_survives_a_restart(
        fake: FakeDiscord, tmp_path: Path, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model="tiny.en", device="cpu")  # type: ignore[call-arg]
    attachment = fake.attachment(audio("jfk.m4a"), "memo.m4a", "audio/mp4")
    first_url = attachment["url"]
    fake.hold_downloads()
    service = TranscriptionService(settings=settings, engine=tiny_engine)
    bot = DiscordBot(service=service, settings=discord_settings(fake), guild_ready_timeout=0.05)
    await bot.start()
    command = await fake.user_message("!transcribe", attachments=[attachment])
    await fake.wait_calls("GET", first_url.split(str(fake.port))[1])  # accepted, and downloading
    await service.aclose(grace_s=0)  # the process dies mid-download
    await bot.stop()

    fake.expire(attachment)  # by the time it is back, the signed URL has expired
    fake.release_downloads()
    async with TranscriptionService(settings=settings, engine=tiny_engine) as restarted:
        bot = DiscordBot(service=restarted, settings=discord_settings(fake), guild_ready_timeout=0.05)
        await bot.start()
        try:
            assert await restarted.resume("discord") == 1
            (answer,) = await answers(fake)
        finally:
            await bot.stop()

    assert wer(JFK, answer.body["content"]) < 0.2
    assert str(answer.body["message_reference"]["message_id"]) == command["id"]
    assert attachment["url"] != first_url
    assert fake.find("GET", attachment["url"].split(str(fake.port))[1]), "the fresh URL was used"


async def test_chatscribe_run_discord_subprocess_answers_a_command(
        fake: FakeDiscord, tmp_path: Path, model_dir: Path, tiny_engine: FasterWhisperEngine,
        audio: Callable[[str], bytes]) -> None:
    env = {
        **os.environ,
        "DISCORD_BOT_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.base_url,
        "CHATSCRIBE_DATA_DIR": str(model_dir),  # holds the already assembled tiny.en model
        "CHATSCRIBE_MODEL": "tiny.en",
        "CHATSCRIBE_DEVICE": "cpu",
        "CHATSCRIBE_HTTP_PORT": str(free_port()),
        "CHATSCRIBE_LOG_LEVEL": "DEBUG",  # the most talkative the logs get: still no token
    }
    log_path = tmp_path / "chatscribe.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, watched through the fake
            [sys.executable, "-m", "chatscribe", "run", "discord"], env=env, cwd=tmp_path,
            stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            await until(lambda: fake.identifies > 0 or process.poll() is not None, timeout=120)
            assert process.poll() is None, "chatscribe run exited early"
            await fake.user_message("!transcribe", attachments=[
                fake.attachment(audio("jfk_voice.ogg"), "voice.ogg", "audio/ogg")])
            (answer,) = await answers(fake)
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log_path.read_text(errors="replace")
    assert process.returncode == 0, output
    assert wer(JFK, answer.body["content"]) < 0.2
    assert fake.token not in output


# -- helpers ----------------------------------------------------------------------------------------------


def _cached_request(url: str, channel_id: str) -> MediaRequest:
    """File ids (an attachment's URL path) are looked up per conversation (the channel), as `forget` needs."""
    async def never(max_bytes: int) -> bytes:
        raise AssertionError("the cached transcript is read without downloading")

    return MediaRequest(platform="discord", chat_id=channel_id, user_id="", fetch=never,
                        platform_file_id=attachment_key(url))


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        frames = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(frames)


def _encode_flac(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
