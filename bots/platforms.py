"""Which platforms can run: their settings classes, the variables each needs, and building their bots."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic_settings import BaseSettings

from chatscribe.core import ChatscribeError, ConfigError, TranscriptionService, load

from .base import Bot


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    module: str
    settings_class: str
    bot_class: str
    required: tuple[tuple[str, str, str | None], ...]
    """(settings field, environment variable, unless this other field is set) that must be set."""

    def settings(self) -> BaseSettings:
        cls = getattr(importlib.import_module(self.module), self.settings_class)
        return load(cls)

    def missing(self, settings: BaseSettings) -> list[str]:
        return [
            env for field, env, unless in self.required
            if not _secret_or_value(getattr(settings, field, None))
            and not (unless and _secret_or_value(getattr(settings, unless, None)))
        ]

    def build(self, settings: BaseSettings, service: TranscriptionService) -> Bot:
        cls = getattr(importlib.import_module(self.module), self.bot_class)
        return cls(settings=settings, service=service)  # type: ignore[no-any-return]


PLATFORMS = {
    "telegram": Platform("telegram", "chatscribe.bots.telegram_bot", "TelegramSettings", "TelegramBot",
                         (("bot_token", "TELEGRAM_BOT_TOKEN", None),)),
    "discord": Platform("discord", "chatscribe.bots.discord_bot", "DiscordSettings", "DiscordBot",
                        (("bot_token", "DISCORD_BOT_TOKEN", None),)),
    "slack": Platform("slack", "chatscribe.bots.slack_bot", "SlackSettings", "SlackBot",
                      # Socket Mode (an app token) needs no signing secret: nothing arrives over HTTP.
                      (("bot_token", "SLACK_BOT_TOKEN", None),
                       ("signing_secret", "SLACK_SIGNING_SECRET", "app_token"))),
}


def platform_status() -> dict[str, str]:
    """One line per platform for `doctor` and the start-up log."""
    status = {}
    for name, platform in PLATFORMS.items():
        try:
            missing = platform.missing(platform.settings())
        except (ChatscribeError, ImportError) as exc:
            status[name] = f"PROBLEM: {getattr(exc, 'user_message', exc)}"
            continue
        status[name] = "configured" if not missing else f"not configured (set {', '.join(missing)})"
    return status


def configured(requested: list[str]) -> tuple[list[tuple[Platform, BaseSettings]], list[str]]:
    """The platforms to start, and a sentence per requested platform that cannot start."""
    ready, problems = [], []
    for name in requested or list(PLATFORMS):
        platform = PLATFORMS[name]
        try:
            settings = platform.settings()
        except ConfigError as exc:
            problems.append(f"{name}: {exc.user_message}")
            continue
        missing = platform.missing(settings)
        if missing:
            if requested:
                problems.append(f"{name} is not configured: set {', '.join(missing)} (see .env.example)")
            continue
        ready.append((platform, settings))
    return ready, problems


def _secret_or_value(value: object) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)
