"""Conversation settings as people use them on Slack, Discord and Telegram (Telegram's restart and group
rules: test_telegram_bot.py), and
CHATSCRIBE_LANGUAGES on every path: the real bots against the fake platforms on 127.0.0.1, real SQLite, the
real models (multilingual `base` for German speech cut from multilingual.mp3).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from chatscribe.bots.discord_bot import NOT_ALLOWED, DiscordBot, DiscordSettings
from chatscribe.bots.http import HttpServer, create_app
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from tests.bots.test_slack_bot import CHANNEL, JFK, running
from tests.bots.test_telegram_bot import PRIVATE, last_text, send, start_bot
from tests.fakes.discord_api import FLAG_EPHEMERAL, Call, FakeDiscord
from tests.fakes.slack_api import FakeSlack, message_event
from tests.fakes.telegram_api import FakeTelegram
from tests.http.conftest import API_KEY
from tests.wer import wer

GERMAN_HALF_S = 31.0
"""multilingual.mp3 switches from English to German at about 0:30."""
GERMAN_WORDS = {"software", "der", "die", "und", "zu", "genehmigung", "kopien", "verkaufen", "rechte",
                "bedingungen", "veröffentlichen", "verteilen", "dokumentationsdateien", "hiermit"}
CLI = Path(sys.executable).with_name("chatscribe")


@pytest.fixture(scope="module")
def german(audio: Callable[[str], bytes]) -> bytes:
    """The German half of multilingual.mp3, as a WAV file a person might share."""
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples[int(GERMAN_HALF_S * SAMPLE_RATE):]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def german_words(text: str) -> set[str]:
    return set(text.lower().replace(",", " ").replace(".", " ").split()) & GERMAN_WORDS


# -- Slack ------------------------------------------------------------------------------------------------


@pytest.fixture
async def slack_fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


async def test_slack_language_set_by_command_is_used_for_the_next_file(
        slack_fake: FakeSlack, settings: Settings, base_engine: FasterWhisperEngine, german: bytes) -> None:
    slack_fake.creators[CHANNEL] = "UALICE"
    async with TranscriptionService(settings=settings, engine=base_engine) as service, \
            running(slack_fake, service) as slack:
        status, _, response_url = await slack.command("language German")
        assert status == 200
        assert "Language set to German (de)." in await slack_fake.response_at(response_url)
        message = await slack.share("german.wav", german, mimetype="audio/wav")
        (reply,) = await slack.replies(message)
    assert len(german_words(reply)) >= 6, reply


async def test_slack_settings_survive_a_restart_and_an_unknown_value_changes_nothing(
        slack_fake: FakeSlack, settings: Settings, tiny_engine: FasterWhisperEngine) -> None:
    slack_fake.creators[CHANNEL] = "UALICE"
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service, \
            running(slack_fake, service) as slack:
        for words in ("language de", "vocab Kubernetes, ComfyUI", "timestamps on"):
            _, _, response_url = await slack.command(words)
            await slack_fake.response_at(response_url)
        _, refused, _ = await slack.command("translate maybe")
        assert "Translation to English takes on or off." in refused
        _, refused, _ = await slack.command("language klingon")
        assert "klingon" in refused
        assert "auto, a code such as en or de, or an English name" in refused
        assert "/transcribe auto on|off" not in refused, "one sentence, not the whole help"

    async with TranscriptionService(settings=settings, engine=tiny_engine) as service, \
            running(slack_fake, service) as slack:
        _, shown, _ = await slack.command("settings", user="UBOB")  # anyone in the channel may see them
    assert "Language: German (de)" in shown
    assert "Translate to English: off" in shown
    assert "Vocabulary: Kubernetes, ComfyUI" in shown
    assert "Timestamps: on" in shown


async def test_slack_repost_of_the_same_file_is_not_downloaded_again(
        slack_fake: FakeSlack, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    async with running(slack_fake, service) as slack:
        first = await slack.share("jfk_voice.ogg", audio("jfk_voice.ogg"), mimetype="audio/ogg")
        (answer,) = await slack.replies(first)
        info = slack_fake.files[first["files"][0]["id"]].info
        again = slack_fake.add_message(CHANNEL, files=[info])  # the same file shared again: same file id
        assert await slack.event(message_event(CHANNEL, again)) == 200
        (repeat,) = await slack.replies(again)
    assert wer(JFK, repeat) < 0.3
    assert repeat == answer
    assert len(slack_fake.downloads) == 1


# -- Discord ----------------------------------------------------------------------------------------------


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


def _discord(fake: FakeDiscord, service: TranscriptionService) -> DiscordBot:
    config = DiscordSettings(_env_file=None, bot_token=fake.token, api_base_url=fake.base_url,  # type: ignore[call-arg]
                             status_after_s=3600)
    return DiscordBot(service=service, settings=config, guild_ready_timeout=0.05)


async def _chatscribe(fake: FakeDiscord, words: list[Any], *, moderator: bool) -> Call:
    """`/chatscribe …` (subcommands as Discord sends them); the interaction's immediate answer."""
    member = fake.member(fake.moderator if moderator else fake.user, moderator=moderator)
    interaction = await fake.slash_command("chatscribe", words, member=member)
    (answer,) = await fake.wait_calls("POST", f"/interactions/{interaction['id']}/{interaction['token']}/callback")
    return answer


def _sub(name: str, option: str | None = None, value: str | None = None) -> dict[str, Any]:
    options = [{"name": option, "type": 3, "value": value}] if option else []
    return {"name": name, "type": 1, "options": options}


async def _answers(fake: FakeDiscord, count: int) -> list[Call]:
    posts = await fake.wait_calls("POST", f"/channels/{fake.channel_id}/messages", count)
    return [c for c in posts if c.body]


async def test_discord_language_set_by_command_is_used_for_voice_messages(
        discord_fake: FakeDiscord, settings: Settings, base_engine: FasterWhisperEngine, german: bytes) -> None:
    fake = discord_fake
    async with TranscriptionService(settings=settings, engine=base_engine) as service:
        bot = _discord(fake, service)
        await bot.start()
        try:
            denied = await _chatscribe(fake, [_sub("language", "value", "de")], moderator=False)
            assert denied.body["data"]["content"] == NOT_ALLOWED
            assert service.preferences.get("discord", fake.guild_id, "language") is None
            done = await _chatscribe(fake, [_sub("language", "value", "German")], moderator=True)
            assert done.body["data"]["content"] == "In this server: Language set to German (de)."
            shown = await _chatscribe(fake, [_sub("settings")], moderator=False)  # everyone may see them
            assert "Language: German (de)" in shown.body["data"]["content"]

            voice = fake.attachment(german, "voice-message.wav", "audio/wav", voice=True)
            await fake.user_message(attachments=[voice], voice=True)
            (answer,) = await _answers(fake, 1)
            await service.wait_idle()
        finally:
            await bot.stop()
    assert len(german_words(answer.body["content"])) >= 6, answer.body["content"]


async def test_discord_channel_override_and_a_refused_value(
        discord_fake: FakeDiscord, settings: Settings, tiny_engine: FasterWhisperEngine) -> None:
    fake = discord_fake
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        bot = _discord(fake, service)
        await bot.start()
        try:
            await _chatscribe(fake, [_sub("language", "value", "de")], moderator=True)
            await _chatscribe(fake, [_sub("vocab", "terms", "Kubernetes")], moderator=True)
            channel = await _chatscribe(fake, [{"name": "channel", "type": 2, "options": [
                _sub("language", "value", "en")]}], moderator=True)
            assert channel.body["data"]["content"] == "In this channel: Language set to English (en)."
            refused = await _chatscribe(fake, [_sub("language", "value", "klingon")], moderator=True)
            assert "klingon" in refused.body["data"]["content"]
            assert refused.body["data"]["flags"] & FLAG_EPHEMERAL
            shown = (await _chatscribe(fake, [_sub("settings")], moderator=False)).body["data"]["content"]
            assert "Language: English (en)" in shown, "the channel's own value over the server's"
            assert "Vocabulary: Kubernetes" in shown
            assert "This channel sets language itself" in shown
            await _chatscribe(fake, [{"name": "channel", "type": 2, "options": [_sub("reset")]}], moderator=True)
            shown = (await _chatscribe(fake, [_sub("settings")], moderator=False)).body["data"]["content"]
        finally:
            await bot.stop()
    assert "Language: German (de)" in shown, "the refused value changed nothing; the reset channel follows the server"


async def test_discord_honours_chatscribe_languages(
        discord_fake: FakeDiscord, tmp_path: Path, tiny_engine: FasterWhisperEngine,
        audio: Callable[[str], bytes]) -> None:
    fake = discord_fake
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model="tiny.en", device="cpu",  # type: ignore[call-arg]
                        languages="en,de")
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        bot = _discord(fake, service)
        asked: list[TranscribeOptions] = []
        deliver = bot.deliver

        async def recording(job: Any, outcome: Any, receipt: Any) -> None:  # what the voice path asked for
            asked.append(job.options)
            await deliver(job, outcome, receipt)

        bot.deliver = recording  # type: ignore[method-assign]
        await bot.start()
        try:
            voice = fake.attachment(audio("jfk_voice.ogg"), "voice-message.ogg", "audio/ogg", voice=True)
            await fake.user_message(attachments=[voice], voice=True)
            await _answers(fake, 1)
            await service.wait_idle()
            await fake.user_message("!transcribe fr", attachments=[
                fake.attachment(audio("jfk_voice.ogg"), "memo.ogg", "audio/ogg")])
            refusal = (await _answers(fake, 2))[-1].body["content"]
            refused = await _chatscribe(fake, [_sub("language", "value", "French")], moderator=True)
        finally:
            await bot.stop()
    assert [options.expected_languages for options in asked] == [("en", "de")]
    assert refusal.endswith("use auto, English (en) or German (de).")
    assert refused.body["data"]["content"].endswith("use auto, English (en) or German (de).")
    assert len(fake.downloads) == 1, "the refused command downloaded nothing"


async def test_discord_repost_of_the_same_attachment_url_is_not_downloaded_again(
        discord_fake: FakeDiscord, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    fake = discord_fake
    bot = _discord(fake, service)
    await bot.start()
    try:
        first = fake.attachment(audio("jfk.m4a"), "memo.m4a", "audio/mp4")
        await fake.user_message("!transcribe", attachments=[first])
        (answer,) = await _answers(fake, 1)
        await service.wait_idle()
        forwarded = {**first, "id": fake.new_id()}  # a forward: a new attachment id, the same CDN path
        await fake.user_message("!transcribe", attachments=[forwarded])
        replies = await _answers(fake, 2)
        await service.wait_idle()
    finally:
        await bot.stop()
    assert replies[-1].body["content"] == answer.body["content"]
    assert wer(JFK, answer.body["content"]) < 0.2
    assert len(fake.downloads) == 1


# -- the HTTP API and the CLI ------------------------------------------------------------------------------


async def test_api_refuses_a_language_outside_chatscribe_languages(
        tmp_path: Path, tiny_engine: FasterWhisperEngine, audio: Callable[[str], bytes]) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model="tiny.en", device="cpu",  # type: ignore[call-arg]
                        http_port=0, api_keys=API_KEY, user_rate="", languages="en,de")
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        http = HttpServer(create_app(service=service, settings=settings), settings.http_host, 0)
        await http.start()
        try:
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{http.port}/v1", api_key=API_KEY, max_retries=0)
            with pytest.raises(openai.BadRequestError) as refused:
                await client.audio.transcriptions.create(model="whisper-1", file=("jfk.ogg", audio("jfk_voice.ogg")),
                                                         language="fr")
            offered = await client.audio.transcriptions.create(  # one of them, by its English name
                model="whisper-1", file=("jfk.ogg", audio("jfk_voice.ogg")), language="English")
        finally:
            await http.stop()
    assert "English (en) or German (de)" in str(refused.value)
    assert wer(JFK, offered.text) < 0.3


def test_cli_refuses_a_language_outside_chatscribe_languages(tmp_path: Path, audio_dir: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHATSCRIBE_")}
    env.update(CHATSCRIBE_MODEL="tiny.en", CHATSCRIBE_DEVICE="cpu", CHATSCRIBE_DATA_DIR=str(tmp_path / "data"),
               CHATSCRIBE_LANGUAGES="en,de")
    done = subprocess.run([str(CLI), "transcribe", "--language", "fr", str(audio_dir / "jfk_voice.ogg")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("use auto, English (en) or German (de).")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# -- Telegram -----------------------------------------------------------------------------------------------


@pytest.fixture
async def telegram_fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as api:
        yield api


async def test_telegram_language_set_by_command_is_used_for_the_next_file_and_checked_against_languages(
        telegram_fake: FakeTelegram, tmp_path: Path, base_engine: FasterWhisperEngine, german: bytes) -> None:
    fake = telegram_fake
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model="base", device="cpu",  # type: ignore[call-arg]
                        languages="en,de")
    async with TranscriptionService(settings=settings, engine=base_engine) as service:
        bot = await start_bot(fake, service)
        try:
            await send(fake, service, fake.message(chat_id=PRIVATE, text="/language French"))
            assert last_text(fake, PRIVATE).endswith("use auto, English (en) or German (de).")
            await send(fake, service, fake.message(chat_id=PRIVATE, text="/language German"))
            assert last_text(fake, PRIVATE) == "Language set to German (de)."
            await send(fake, service, fake.document(german, chat_id=PRIVATE, file_name="german.wav",
                                                    mime_type="audio/wav"))
            answer = last_text(fake, PRIVATE)
        finally:
            await bot.stop()
    assert len(german_words(answer)) >= 6, answer
