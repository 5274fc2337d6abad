"""The bots' own words in the language the platform says its person uses: the real bots against their fakes
on 127.0.0.1, the real tiny.en model and the shared audio. (The per-conversation `replies` setting is in the
scenario suite, on all three platforms.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from chatscribe.bots.discord_bot import DiscordBot, DiscordSettings
from chatscribe.bots.telegram_bot import TelegramBot, TelegramSettings
from chatscribe.core.service import TranscriptionService
from tests.bots.test_slack_bot import running as running_slack
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram

PRIVATE = 42
GERMAN_HELP = "Schick mir eine Sprachnachricht, ein Audio oder Video, und ich antworte mit dem Text."
GERMAN_NO_SPEECH = "Keine Sprache erkannt."


@pytest.fixture
async def telegram(service: TranscriptionService) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        settings = TelegramSettings(_env_file=None, bot_token=fake.token,  # type: ignore[call-arg]
                                    base_url=fake.base_url, base_file_url=fake.base_file_url)
        bot = TelegramBot(settings=settings, service=service)
        await bot.start()
        try:
            yield fake
        finally:
            await bot.stop()


async def _send(fake: FakeTelegram, service: TranscriptionService, message: dict[str, Any]) -> str:
    """The bot's last message in the private chat once it acknowledged `message` and answered every job."""
    update_id = await fake.push(message)
    await fake.wait_for(lambda: fake.acknowledged_below > update_id)
    await service.wait_idle()
    return str(fake.bot_messages(PRIVATE)[-1]["text"])


async def test_a_german_telegram_user_gets_the_help_and_no_speech_in_german(
        telegram: FakeTelegram, service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    help_text = await _send(telegram, service, telegram.message(chat_id=PRIVATE, text="/help", language_code="de"))
    silence = telegram.voice(audio("silence_10s.ogg"), chat_id=PRIVATE, duration=10, language_code="de")
    no_speech = await _send(telegram, service, silence)
    english = await _send(telegram, service, telegram.message(chat_id=PRIVATE, text="/help", language_code="en"))
    unknown = await _send(telegram, service, telegram.message(chat_id=PRIVATE, text="/help", language_code="ja"))

    assert help_text.startswith(GERMAN_HELP)
    assert no_speech == GERMAN_NO_SPEECH
    assert english.startswith("Send me a voice note")
    assert unknown == english


async def test_telegram_command_descriptions_are_set_for_each_reply_language(telegram: FakeTelegram) -> None:
    calls = telegram.calls_to("setMyCommands")
    lists = {(c.params.get("language_code"), "scope" in c.params): c.params["commands"] for c in calls}
    described = {key: {c["command"]: c["description"] for c in (json.loads(v) if isinstance(v, str) else v)}
                 for key, v in lists.items()}

    assert {language for language, _ in described} == {None, "de", "es", "fr", "it", "pt", "ru", "uk"}
    assert described[(None, False)]["help"] == "What this bot does"
    assert described[("de", False)]["help"] == "Was dieser Bot macht"
    assert described[("fr", True)]["forget"] == "Supprimer ce que je garde sur ce groupe (admins)"
    assert described[("ru", False)]["replies"].startswith("auto или язык моих ответов")
    assert all(set(d) == set(described[(None, group)]) for (_, group), d in described.items())


async def test_discord_commands_are_synced_with_localized_descriptions(service: TranscriptionService) -> None:
    async with FakeDiscord() as fake:
        settings = DiscordSettings(_env_file=None, bot_token=fake.token,  # type: ignore[call-arg]
                                   api_base_url=fake.base_url, guild_ids=fake.guild_id)
        bot = DiscordBot(service=service, settings=settings, guild_ready_timeout=0.05)
        await bot.start()
        try:
            fake.locale = "de"
            interaction = await fake.slash_command("chatscribe", [{"name": "settings", "type": 1, "options": []}])
            callback = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
            (shown,) = await fake.wait_calls("POST", callback)
        finally:
            await bot.stop()
    synced = {c["name"]: c for c in fake.commands[fake.guild_id]}
    transcribe = synced["transcribe"]
    assert transcribe["description_localizations"]["de"] == "Eine Audio- oder Videodatei transkribieren"
    assert set(transcribe["description_localizations"]) == {"de", "es-ES", "es-419", "fr", "it", "pt-BR", "ru", "uk"}
    file_option = next(o for o in transcribe["options"] if o["name"] == "file")
    assert file_option["description_localizations"]["fr"] == "L’enregistrement (par défaut : le dernier de ce salon)"
    settings_commands = {o["name"]: o for o in synced["chatscribe"]["options"]}
    assert settings_commands["language"]["description_localizations"]["it"] == (
        "Lingua parlata in questo server: auto, un codice (de) o un nome")
    assert all(len(text) <= 100 for text in transcribe["description_localizations"].values())
    # An interaction from someone whose Discord is in German is answered in German.
    assert shown.body["data"]["content"].startswith("**Einstellungen in diesem Kanal**")


async def test_slack_reads_the_persons_locale_where_allowed_and_falls_back_to_english(
        service: TranscriptionService) -> None:
    async with FakeSlack() as fake, running_slack(fake, service) as slack:
        fake.locales["UALICE"] = "pt-BR"
        _, portuguese, _ = await slack.command("help")
        _, english, _ = await slack.command("help", user="UBOB")  # en-US
        fake.locale_refused = True  # a token without users:read: English, quietly, for someone not yet known
        _, refused, _ = await slack.command("help", user="UCAROL")
        _, cached, _ = await slack.command("help")  # Alice's locale was kept
    asked = [c for c in fake.calls if c.method == "users.info"]

    assert _text(portuguese).startswith("*/transcribe* transcreve o áudio ou vídeo mais recente")
    assert _text(english).startswith("*/transcribe* transcribes the latest audio")
    assert _text(refused) == _text(english)
    assert _text(cached) == _text(portuguese)
    assert len([c for c in asked if c.params.get("user") == "UALICE"]) == 1


def _text(ack: str) -> str:
    """A command's ack: Slack takes JSON or plain text."""
    return str(json.loads(ack)["text"]) if ack.startswith("{") else ack


async def test_slack_asks_for_a_locale_again_after_a_failed_lookup(service: TranscriptionService) -> None:
    async with FakeSlack() as fake, running_slack(fake, service) as slack:
        fake.locales["UALICE"] = "pt-BR"
        fake.break_next("users.info", times=3)  # a proxy's 502, retries included: English this once, not for a day
        _, during, _ = await slack.command("help")
        _, after, _ = await slack.command("help")

    assert _text(during).startswith("*/transcribe* transcribes the latest audio")
    assert _text(after).startswith("*/transcribe* transcreve o áudio ou vídeo mais recente")


async def test_slack_asks_for_a_locale_again_after_the_connection_dropped(
        service: TranscriptionService, audio: Callable[[str], bytes]) -> None:
    """A timeout or a dropped connection looking up the person's locale: that note is answered in English and
    nothing is kept, so the next note asks again and is answered in Portuguese."""
    async with FakeSlack() as fake, running_slack(fake, service) as slack:
        fake.locales["UALICE"] = "pt-BR"
        fake.locale_unreachable = True  # users.info closes the connection, slack_sdk's retry included
        first = await slack.share("a.ogg", audio("silence_10s.ogg"), mimetype="audio/ogg")
        (during,) = await slack.replies(first)
        dropped = len(fake.calls_to("users.info"))
        fake.locale_unreachable = False
        second = await slack.share("b.ogg", audio("silence_10s.ogg"), mimetype="audio/ogg")
        (after,) = await slack.replies(second)

    assert dropped >= 1
    assert all(c.error == "connection_closed" for c in fake.calls_to("users.info")[:dropped])
    assert during == "No speech detected."
    assert after == "Nenhuma fala detectada."
