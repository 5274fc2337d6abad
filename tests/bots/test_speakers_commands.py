"""The speakers setting is offered where each platform lists its commands: Telegram's command menu (private
chats and groups), as the real bot registers it with the fake Bot API on 127.0.0.1. (Setting it and seeing it
in `settings` is in the scenario suite, on all three platforms; Discord's command tree in test_discord_bot.)"""

from __future__ import annotations

import json

from chatscribe.bots.telegram_bot import TelegramBot, TelegramSettings
from chatscribe.core.service import TranscriptionService
from tests.fakes.telegram_api import FakeTelegram


async def test_telegram_lists_speakers_in_its_command_menu(service: TranscriptionService) -> None:
    async with FakeTelegram() as fake:
        settings = TelegramSettings(_env_file=None, bot_token=fake.token,  # type: ignore[call-arg]
                                    base_url=fake.base_url, base_file_url=fake.base_file_url)
        bot = TelegramBot(settings=settings, service=service)
        await bot.start()
        await bot.stop()

    menus = [c.params["commands"] for c in fake.calls_to("setMyCommands") if not c.params.get("language_code")]
    described = [{c["command"]: c["description"] for c in (json.loads(m) if isinstance(m, str) else m)} for m in menus]
    assert len(described) == 2, "one menu for private chats, one for groups"
    for menu in described:
        assert menu["speakers"].startswith("on|off|auto"), menu
