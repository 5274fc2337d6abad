"""One thin driver per platform for the scenario suite: the real bot in this process, talking HTTP to its
fake on 127.0.0.1. A driver sends a voice note as a person would, reads what the bot now shows in that
conversation, and counts the file downloads the fake served; nothing else is shared between platforms."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aiohttp

from chatscribe.adapters import discord as discord_adapter
from chatscribe.adapters import slack as slack_adapter
from chatscribe.adapters import telegram as telegram_adapter
from chatscribe.bots.discord_bot import DiscordBot, DiscordSettings
from chatscribe.bots.telegram_bot import TelegramBot, TelegramSettings
from chatscribe.core.i18n import REPLY_LANGUAGES
from chatscribe.core.sentences import progress_starts
from chatscribe.core.service import TranscriptionService
from chatscribe.core.text import characters, utf16_units
from tests.bots.test_slack_bot import SECRET as SLACK_SECRET
from tests.bots.test_slack_bot import running as slack_running
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack, command_body, event_body, message_event, signed_headers, text_of
from tests.fakes.telegram_api import FakeTelegram
from tests.waiting import until

PLATFORMS = ("telegram", "discord", "slack")
TELEGRAM_CHAT = 42
SLACK_CHANNEL = "C0GENERAL"


class Driver(Protocol):
    limit: int
    """The most one part of an answer may hold on this platform, in the units `measure` counts."""

    def measure(self, text: str) -> int:
        """The length of a part as the platform counts it against `limit`."""

    async def send_voice(self, name: str, data: bytes, *, size: int | None = None) -> None:
        """A person sends a voice note (`size` is what the platform declares, which may exceed the bytes)."""

    def texts(self) -> list[str]:
        """What a person now reads from the bot in the conversation, oldest first."""

    def parts(self) -> list[str]:
        """The pieces the platform carried for the bot's messages, as sent (escaped, each under `limit`)."""

    def downloads(self) -> int:
        """How many times the bot fetched a file from the platform."""

    async def command(self, name: str, value: str | None = None) -> str:
        """Someone allowed to change the conversation's settings sends the platform's settings command
        `name` (language, settings, ...) with `value`; the bot's answer to it."""


STATUS_STARTS = tuple(start for language in REPLY_LANGUAGES for start in progress_starts(None, language))
"""How a status message begins, in every language the bots reply in (the `replies` setting)."""


async def answers(driver: Driver, service: TranscriptionService, count: int) -> list[str]:
    """The bot's messages in the conversation once `count` of them are answers (no status message still
    saying "Transcribing…") and no job is left."""
    def answered() -> list[str] | None:
        texts = driver.texts()
        done = [t for t in texts if not t.startswith(STATUS_STARTS)]
        return texts if len(done) >= count and len(done) == len(texts) else None

    await until(answered, f"{count} answer(s) from the bot", timeout=120)
    await service.wait_idle()
    return driver.texts()


class TelegramDriver:
    limit = telegram_adapter.MESSAGE_LIMIT

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake

    def measure(self, text: str) -> int:
        return utf16_units(text)

    async def send_voice(self, name: str, data: bytes, *, size: int | None = None) -> None:
        update_id = await self.fake.push(self.fake.voice(data, chat_id=TELEGRAM_CHAT, size=size))
        # Acknowledged: the job is journaled, so the service's idleness now means it was answered.
        await self.fake.wait_for(lambda: self.fake.acknowledged_below > update_id)

    def texts(self) -> list[str]:
        return self.fake.final_texts(TELEGRAM_CHAT)

    def parts(self) -> list[str]:
        return self.texts()

    def downloads(self) -> int:
        return sum(self.fake.downloads.values())

    async def command(self, name: str, value: str | None = None) -> str:
        sent = len(self.texts())
        await self.fake.push(self.fake.message(chat_id=TELEGRAM_CHAT, text=f"/{name} {value or ''}".strip()))
        await self.fake.wait_for(lambda: len(self.texts()) > sent)
        return self.texts()[-1]


class DiscordDriver:
    limit = discord_adapter.MESSAGE_LIMIT

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def measure(self, text: str) -> int:
        return characters(text)

    async def send_voice(self, name: str, data: bytes, *, size: int | None = None) -> None:
        await self.fake.user_message(
            attachments=[self.fake.attachment(data, name, "audio/ogg", size=size, voice=True)], voice=True)

    def texts(self) -> list[str]:
        return [_unmarked(part) for part in self.parts()]

    def parts(self) -> list[str]:
        return [str(m["content"]) for m in self.fake.bot_messages()]

    def downloads(self) -> int:
        return len(self.fake.downloads)

    async def command(self, name: str, value: str | None = None) -> str:
        options = [{"name": DISCORD_PARAMETERS.get(name, "value"), "type": 3, "value": value}] if value else []
        interaction = await self.fake.slash_command(
            "chatscribe", [{"name": name, "type": 1, "options": options}],
            member=self.fake.member(self.fake.moderator, moderator=True))
        callback = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
        (answer,) = await self.fake.wait_calls("POST", callback)
        return _unmarked(str(answer.body["data"]["content"]))


DISCORD_PARAMETERS = {"translate": "state", "timestamps": "state", "speakers": "state", "auto": "state",
                      "format": "kind", "vocab": "terms"}
"""The name of each `/chatscribe <setting>` command's one parameter (bots/discord_bot.py); "value" otherwise."""


def _unmarked(content: str) -> str:
    return re.sub(r"\\(.)", r"\1", content)  # Discord's markdown escapes


class SlackDriver:
    limit = slack_adapter.SECTION_LIMIT

    def __init__(self, fake: FakeSlack, url: str, http: aiohttp.ClientSession) -> None:
        self.fake, self.url, self.http = fake, url, http

    def measure(self, text: str) -> int:
        return characters(text)

    async def send_voice(self, name: str, data: bytes, *, size: int | None = None) -> None:
        info = self.fake.add_file(name, data, mimetype="audio/ogg", filetype="ogg", size=size)
        body = event_body(message_event(SLACK_CHANNEL, self.fake.add_message(SLACK_CHANNEL, files=[info])))
        await self._post(body, "application/json")

    def texts(self) -> list[str]:
        return [text_of(m) for m in self.fake.bot_messages(SLACK_CHANNEL)]  # each note's thread, in order

    def parts(self) -> list[str]:
        return [b["text"]["text"] for m in self.fake.bot_messages(SLACK_CHANNEL)
                for b in m.get("blocks") or () if b["type"] == "section"]

    def downloads(self) -> int:
        return len(self.fake.downloads)

    async def command(self, name: str, value: str | None = None) -> str:
        # Refusals and the settings come back in the HTTP answer; a change is answered at response_url.
        url = self.fake.response_url()
        body = command_body(f"{name} {value or ''}".strip(), channel=SLACK_CHANNEL, response_url=url)
        answer = await self._post(body, "application/x-www-form-urlencoded")
        text = json.loads(answer).get("text", "") if answer.startswith("{") else answer
        return slack_adapter.unescape(text or await self.fake.response_at(url))

    async def _post(self, body: str, content_type: str) -> str:
        headers = {"Content-Type": content_type, **signed_headers(SLACK_SECRET, body)}
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.text()


@contextlib.asynccontextmanager
async def running(platform: str, service: TranscriptionService) -> AsyncIterator[Driver]:
    """The platform's fake and its real bot on `service`, set up as in tests/bots/test_<platform>_bot.py."""
    if platform == "telegram":
        async with FakeTelegram() as telegram:
            settings: Any = TelegramSettings(_env_file=None, bot_token=telegram.token,  # type: ignore[call-arg]
                                             base_url=telegram.base_url, base_file_url=telegram.base_file_url)
            bot: Any = TelegramBot(settings=settings, service=service)
            await bot.start()
            await service.resume(bot.platform)
            try:
                yield TelegramDriver(telegram)
            finally:
                await bot.stop()
    elif platform == "discord":
        async with FakeDiscord() as discord:
            settings = DiscordSettings(_env_file=None, bot_token=discord.token,  # type: ignore[call-arg]
                                       api_base_url=discord.base_url)
            bot = DiscordBot(service=service, settings=settings, guild_ready_timeout=0.05)
            await bot.start()
            try:
                yield DiscordDriver(discord)
            finally:
                await bot.stop()
    elif platform == "slack":
        # No "Transcribing…" status (running's default: it depends on measured speed): one message per answer.
        async with FakeSlack() as slack, slack_running(slack, service) as harness:
            slack.creators[SLACK_CHANNEL] = "UALICE"  # who sends the commands may change the channel's settings
            yield SlackDriver(slack, harness.url, harness.http)
    else:
        raise ValueError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")


