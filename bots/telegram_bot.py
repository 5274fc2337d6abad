"""The Telegram bot: voice notes, audio and video in, transcripts out, on python-telegram-bot v22.

We own the loop: the PTB Application is built without an Updater and never runs `run_polling()`.
Updates come from our own long-polling loop (or the webhook route on the shared aiohttp server) and go
through `Application.process_update()` one at a time. That is what makes accepted work safe: the media
handler journals the job (`service.submit`) before it returns, and only then is the update acknowledged
(the next getUpdates carries a higher offset; a webhook call gets its 200). PTB's own Updater would not
do: it queues updates and advances the offset without waiting for the handlers. Sequential processing
costs little because handlers only journal and answer commands; transcription runs in the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from telegram import BotCommand, BotCommandScopeAllGroupChats, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from chatscribe.adapters import telegram as adapter
from chatscribe.core import (
    ENV_FILE,
    REPLY_LANGUAGES,
    ChatscribeError,
    ConfigError,
    ConversationSettings,
    Sentence,
    SettingChange,
    joined,
    localize,
    parse_setting,
)

from .telegram_delivery import Sender, TelegramDelivery, retry_after_s

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
POLL_TIMEOUT_S = 25
OFFSET_MAX_AGE_S = 86_400
"""Telegram keeps unacknowledged updates for 24 h, and may restart update ids after a quiet week."""
_BOT_SCOPE = "_bot"
MEDIA = (filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE | filters.VIDEO
         | filters.Document.Category("audio/") | filters.Document.Category("video/"))


class TelegramSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEGRAM_", env_file=ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore")

    bot_token: SecretStr = SecretStr("")
    """From @BotFather."""
    allowed_chats: str = ""
    """Comma-separated chat ids or @usernames that may use the bot; empty = everyone."""
    webhook_url: str = ""
    """Public HTTPS URL ending in /telegram/webhook; empty = long polling."""
    webhook_secret: SecretStr = SecretStr("")
    """Required with webhook_url: Telegram sends it in X-Telegram-Bot-Api-Secret-Token."""
    base_url: str = "https://api.telegram.org/bot"
    """Bot API base; requests go to {base_url}{token}/{method} (a local Bot API server: http://host:8081/bot)."""
    base_file_url: str = "https://api.telegram.org/file/bot"
    local_mode: bool = False
    """True with a local Bot API server started with --local: files up to 2000 MB instead of 20 MB."""

    @field_validator("allowed_chats")
    @classmethod
    def _check_chats(cls, value: str) -> str:
        for entry in _entries(value):
            if not (entry.lstrip("-").isdigit() or re.fullmatch(r"@\w{4,}", entry)):
                raise ValueError(f"{entry!r} is neither a chat id (e.g. -1001234567890) nor an @username")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("Telegram only calls HTTPS webhooks: use https://your.host/telegram/webhook")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("use 1-256 characters A-Z, a-z, 0-9, _ and - (Telegram's rule for secret_token)")
        return value

    def allowed(self) -> frozenset[str]:
        return frozenset(e.lower() for e in _entries(self.allowed_chats))


def _entries(value: str) -> list[str]:
    return [e.strip() for e in value.replace(";", ",").split(",") if e.strip()]


class TelegramBot:
    platform = adapter.PLATFORM

    def __init__(self, *, settings: TelegramSettings, service: TranscriptionService) -> None:
        token = settings.bot_token.get_secret_value()
        if settings.webhook_url and not settings.webhook_secret.get_secret_value():
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be set when TELEGRAM_WEBHOOK_URL is: without it "
                              "anyone could post fake updates to the webhook.")
        self.settings = settings
        self.service = service
        self._allowed = settings.allowed()
        _hide_token_in_logs(token)
        self.app = (Application.builder().token(token).base_url(settings.base_url)
                    .base_file_url(settings.base_file_url).local_mode(settings.local_mode)
                    .updater(None).build())
        self._add_handlers()
        self.sender = Sender(self.app)
        self.delivery = TelegramDelivery(sender=self.sender, service=service, local_mode=settings.local_mode,
                                         chat_settings=self._chat)
        self._poller: asyncio.Task[None] | None = None
        self._handling = False
        self._stopping = False
        self._problem: str | None = "starting"
        self._update_failed = False
        service.register(self.platform, self.delivery)

    # -- Bot protocol ------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self._webhook)] if self.settings.webhook_url else []

    async def start(self) -> None:
        try:
            await self.sender.call(self.app.initialize)  # getMe: checks the token
        except InvalidToken as exc:
            raise ConfigError("Telegram rejected TELEGRAM_BOT_TOKEN: copy it again from @BotFather.") from exc
        except TelegramError as exc:
            raise ChatscribeError(f"Cannot reach the Telegram Bot API ({type(exc).__name__}); check the "
                                  "network or TELEGRAM_BASE_URL.") from exc
        bot = self.app.bot
        for language in (None, *(code for code in REPLY_LANGUAGES if code != "en")):
            # Telegram shows the list for the user's app language, and the default (English) otherwise.
            for scope in (None, BotCommandScopeAllGroupChats()):
                commands = _commands(group=scope is not None, locale=language)
                await self.sender.call(functools.partial(bot.set_my_commands, commands, scope=scope,
                                                         language_code=language))
        if self.settings.webhook_url:
            await self.sender.call(lambda: bot.set_webhook(
                self.settings.webhook_url, secret_token=self.settings.webhook_secret.get_secret_value(),
                allowed_updates=["message"]))
            self._problem = None
        else:
            await self.sender.call(lambda: bot.delete_webhook(drop_pending_updates=False))
            self._poller = asyncio.create_task(self._poll(), name="telegram-polling")
        log.info("telegram: connected as @%s (%s)", bot.username, "webhook" if self.settings.webhook_url
                 else "long polling")

    async def stop(self) -> None:
        self._stopping = True
        self.delivery.stopped = True
        if self._poller is not None:
            if not self._handling:  # never cancel a handler half-way: it may be journaling a job
                self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._problem = "stopped"
        with contextlib.suppress(TelegramError, RuntimeError):
            await self.app.shutdown()

    def not_ready(self) -> str | None:
        return self._problem

    # -- receiving ---------------------------------------------------------------------------------

    async def _poll(self) -> None:
        prefs = self.service.preferences
        key = f"update_offset:{self.app.bot.id}"  # a new token is a new bot with its own update ids
        offset = _fresh_offset(await asyncio.to_thread(prefs.get, self.platform, _BOT_SCOPE, key))
        pause = 1.0
        while not self._stopping:
            try:
                updates = await self.app.bot.get_updates(offset=offset, timeout=POLL_TIMEOUT_S,
                                                         allowed_updates=["message"])
            except InvalidToken:
                self._problem = "Telegram rejected the bot token (TELEGRAM_BOT_TOKEN)"
                log.error("telegram: %s; polling stopped", self._problem)
                return
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_s(exc))
                continue
            except TelegramError as exc:
                self._problem = "cannot reach the Telegram Bot API"
                log.warning("telegram: getUpdates failed (%s); retrying in %.0f s", type(exc).__name__, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
                continue
            self._problem, pause = None, 1.0
            self._handling = True
            for update in updates:
                try:
                    await self._process(update)
                except Exception:  # one bad update never stops the bot
                    log.exception("telegram: update %d could not be handled", update.update_id)
                offset = update.update_id + 1
                # Remembered too, so that a crash between journaling and the next getUpdates does not
                # accept the same message twice after the restart.
                await asyncio.to_thread(prefs.set, self.platform, _BOT_SCOPE, key, f"{offset} {time.time():.0f}")
            self._handling = False

    async def _process(self, update: Update) -> bool:
        """Run the handlers for one update; False when accepted work could not be journaled."""
        for attempt in range(3):
            self._update_failed = False
            await self.app.process_update(update)
            if not self._update_failed:
                return True
            await asyncio.sleep(attempt + 1)
        log.error("telegram: update %d could not be journaled after 3 attempts; skipped", update.update_id)
        return False

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        expected = self.settings.webhook_secret.get_secret_value()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(status=401, text="wrong or missing secret token")
        if self._problem is not None:
            return web.Response(status=503, text=self._problem)  # Telegram delivers it again later
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400, text="not a Telegram update")
        if not await self._process(update):
            return web.Response(status=500, text="try again")  # Telegram redelivers it
        return web.Response(text="ok")

    def _add_handlers(self) -> None:
        only_new = filters.UpdateType.MESSAGE  # edits of old messages are not new requests
        add = self.app.add_handler
        add(CommandHandler(["start", "help"], self._on_help, filters=only_new))
        add(CommandHandler("settings", self._on_settings, filters=only_new))
        add(CommandHandler(list(adapter.SETTING_COMMANDS), self._on_setting, filters=only_new))
        add(CommandHandler("transcribe", self._on_transcribe, filters=only_new))
        add(CommandHandler("forget", self._on_forget, filters=only_new))
        add(MessageHandler(MEDIA & only_new, self._on_media))
        self.app.add_error_handler(self._on_error)

    async def _on_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        media = adapter.media_of(message)
        if message is None or media is None:
            return
        private = message.chat.type == ChatType.PRIVATE
        if not self._is_allowed(message):
            if private:
                await self._say(message, adapter.NOT_ALLOWED)
            return
        if private or self._chat(message.chat_id).auto_or(False):
            await self._accept(message, media, answer_to=message, replies=self._replies(message))

    async def _on_transcribe(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._check_allowed(message):
            return
        target = message.reply_to_message
        media = adapter.media_of(target)
        if target is None or media is None:
            await self._say(message, adapter.NOTHING_TO_TRANSCRIBE)
            return
        user = message.from_user.id if message.from_user else None
        await self._accept(target, media, answer_to=target, user_id=user, replies=self._replies(message))

    async def _on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and await self._check_allowed(message):
            group = message.chat.type != ChatType.PRIVATE
            await self._say(message, adapter.HELP_GROUP if group else adapter.HELP_PRIVATE)

    async def _on_settings(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and await self._check_allowed(message):
            group = message.chat.type != ChatType.PRIVATE
            await self._say(message, adapter.describe_settings(self._chat(message.chat_id), group=group))

    async def _on_setting(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text or not await self._check_allowed(message):
            return
        command, _, argument = message.text.partition(" ")
        name = command.lstrip("/").split("@")[0].lower()
        group = message.chat.type != ChatType.PRIVATE
        if name == "auto" and not group:
            await self._say(message, adapter.PRIVATE_AUTO)
            return
        if group and not await self._is_admin(message):
            await self._say(message, adapter.ADMINS_ONLY)
            return
        try:
            change = parse_setting(name, argument, offered=self.service.settings.expected_languages)
        except ChatscribeError as exc:  # a value it does not take: the setting stays as it was
            await self._say(message, exc.user_message)
            return
        await asyncio.to_thread(self.service.preferences.change, self.platform, str(message.chat_id), change)
        answer = change.confirmation
        if change == SettingChange("auto", "on") and not self.app.bot.can_read_all_group_messages:
            answer = joined([answer, adapter.PRIVACY_HINT])
        await self._say(message, answer)

    async def _on_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Delete this chat's cached transcripts, settings and job records; in groups, admins only."""
        message = update.effective_message
        if message is None or not await self._check_allowed(message):
            return
        if message.chat.type != ChatType.PRIVATE and not await self._is_admin(message):
            await self._say(message, adapter.ADMINS_ONLY)
            return
        forgotten = await self.service.forget(self.platform, str(message.chat_id))
        await self._say(message, forgotten.sentence)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        message = update.effective_message if isinstance(update, Update) else None
        if isinstance(error, ChatscribeError) and message is not None:  # e.g. a setting not saved: disk full
            log.warning("telegram: an update was refused: %s", error.code)
            await self._say(message, error.user_message)
            return
        log.error("telegram: handling an update failed: %s: %s", type(error).__name__, error,
                  exc_info=None if isinstance(error, TelegramError) else error)

    # -- accepting work ----------------------------------------------------------------------------

    async def _accept(self, message: Message, media: adapter.TelegramMedia, *, answer_to: Message,
                      user_id: int | None = None, replies: str | None = None) -> None:
        """`replies`: the language of the bot's words for this job (of the person who asked for it)."""
        too_large = adapter.size_error(media.size_bytes, self.service.max_file_bytes,
                                       local_mode=self.settings.local_mode)
        if too_large is not None:  # answered from the declared size: nothing is downloaded
            await self.sender.reply(answer_to, adapter.error_text(too_large, replies))
            return
        chat = self._chat(message.chat_id)
        request = adapter.media_request(message, media, self.delivery.fetcher({"file_id": media.file_id}),
                                        user_id=user_id, answer_to=answer_to, replies=replies)
        try:
            job = await self.service.submit(request, chat.options(self.service.settings.expected_languages))
        except ChatscribeError as exc:
            await self.sender.reply(answer_to, adapter.error_text(exc, replies))
            return
        except Exception:
            log.exception("telegram: could not accept a job")
            self._update_failed = True
            return
        self.delivery.accepted(job)

    # -- chats -------------------------------------------------------------------------------------

    async def _say(self, message: Message, text: str) -> Message:
        """Reply with one of the bot's sentences, in the language of whoever wrote `message`."""
        return await self.sender.reply(message, localize(text, self._replies(message)))

    def _replies(self, message: Message) -> str | None:
        return adapter.reply_language(message, self._chat(message.chat_id))

    def _chat(self, chat_id: int) -> ConversationSettings:
        return self.service.preferences.settings(self.platform, str(chat_id))

    def _is_allowed(self, message: Message) -> bool:
        if not self._allowed:
            return True
        chat = message.chat
        names = {str(chat.id)} | ({f"@{chat.username.lower()}"} if chat.username else set())
        return bool(names & self._allowed)

    async def _check_allowed(self, message: Message) -> bool:
        if self._is_allowed(message):
            return True
        await self._say(message, adapter.NOT_ALLOWED)
        return False

    async def _is_admin(self, message: Message) -> bool:
        if message.sender_chat is not None and message.sender_chat.id == message.chat_id:
            return True  # an anonymous admin posting as the group
        user = message.from_user
        if user is None:
            return False
        member = await self.sender.call(lambda: self.app.bot.get_chat_member(message.chat_id, user.id))
        return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


def _fresh_offset(stored: str | None) -> int:
    """The offset remembered by the previous run, unless too old to mean anything now."""
    offset, _, saved_at = (stored or "").partition(" ")
    if not offset.isdigit() or not saved_at.isdigit() or time.time() - int(saved_at) > OFFSET_MAX_AGE_S:
        return 0
    return int(offset)


def _commands(*, group: bool, locale: str | None = None) -> list[BotCommand]:
    described = [
        ("transcribe", Sentence("Transcribe the voice note or video you reply to")),
        ("language", Sentence("auto, or a language such as en or German")),
        ("translate", Sentence("on|off: answer in English whatever was spoken")),
        ("format", Sentence("text, srt or vtt")),
        ("timestamps", Sentence("on|off: [mm:ss] marks in the text")),
        ("speakers", Sentence("on|off|auto: who said what, in recordings with several voices")),
        ("vocab", Sentence("Names and terms to expect")),
        ("replies", Sentence("auto, or the language of my replies, such as de")),
        ("settings", Sentence("Show this chat's settings")),
        ("forget", Sentence("Delete what I keep about this group (admins)") if group
         else Sentence("Delete what I keep about this chat")),
        ("help", Sentence("What this bot does")),
    ]
    if group:
        described.insert(1, ("auto", Sentence("on|off: transcribe every voice note here (admins)")))
    return [BotCommand(name, localize(description, locale)) for name, description in described]


class _RedactToken(logging.Filter):
    """httpx and PTB log request URLs, which contain the token (`/bot<token>/getUpdates`)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        # The part after the colon is the secret; URLs may carry the token percent-encoded.
        secret = self.token.partition(":")[2] or self.token
        message = record.getMessage()
        if secret in message:
            record.msg, record.args = message.replace(secret, "[redacted]"), None
        return True


_TOKEN_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.Bot", "telegram.ext", "telegram.ext.ExtBot",
                  "telegram.ext.Application", "telegram.request", "telegram._bot", "telegram.request.HTTPXRequest",
                  "telegram.ext.Updater")


def _hide_token_in_logs(token: str) -> None:
    if len(token) < 6:
        return
    for name in _TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactToken) and f.token == token for f in logger.filters):
            logger.addFilter(_RedactToken(token))
