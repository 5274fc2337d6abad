"""Slack: slack-bolt's async app over the TranscriptionService.

HTTP mode serves `/slack/events` on the shared aiohttp server (bolt verifies the signing secret); Socket
Mode connects out when SLACK_APP_TOKEN is set. The same handlers serve both. Work is accepted with
`service.submit()` (journaled) and answered through `deliver()`, also after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chatscribe.adapters import slack as adapter
from chatscribe.core import (
    ENV_FILE,
    ChatscribeError,
    ConfigError,
    ConversationSettings,
    Fetch,
    Transcript,
    TranscriptionService,
    localize,
)
from chatscribe.core.jobs import Job, ProgressUpdate, Receipt

from .slack_client import UNEXPECTED_ANSWER, SlackWebClient, error_code, retry_handlers
from .slack_delivery import SlackDelivery
from .slack_files import SlackFiles
from .slack_seen import SeenEvents
from .slack_verify import verified

log = logging.getLogger(__name__)

MEMBER_PAGES = 20
"""conversations.members pages (1,000 ids each) read to find a caller before giving up."""
LOCALE_LOOKUP_S = 1.5
"""How long a person's Slack locale (users.info) is waited for; then English. A command's ack must come in 3 s."""
LOCALE_KEPT_S = 86_400.0
"""A person's locale is asked for again after a day (or never, while the token may not read it); after a
failed lookup (a timeout, a 5xx) it is asked again next time."""


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_", env_file=ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore")

    bot_token: SecretStr = SecretStr("")
    """Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page."""
    signing_secret: SecretStr = SecretStr("")
    """Basic Information -> Signing Secret: bolt rejects HTTP requests not signed with it."""
    app_token: SecretStr = SecretStr("")
    """App-level token (xapp-…, scope connections:write): set it to use Socket Mode instead of HTTP."""
    api_url: str = Field(default="https://slack.com/api/")
    """Web API base URL (slack_sdk base_url); also a host the bot token may be sent to for files."""
    auto_transcribe: bool = True
    """Transcribe audio and video shared in channels without being asked; `/transcribe auto on|off` per channel."""
    status_after_s: float = Field(default=15, ge=0)
    """Post a "Transcribing…" status in the thread when the answer is expected to take longer than this."""
    settings_users: str = ""
    """Comma-separated user ids (U…) who may change settings in any channel, besides workspace admins and
    owners and each channel's creator."""

    @field_validator("settings_users")
    @classmethod
    def _check_users(cls, value: str) -> str:
        for entry in _entries(value):
            if not re.fullmatch(r"[UW][A-Z0-9]{2,}", entry):
                raise ValueError(f"{entry!r} is not a Slack user id (U… or W…, from a profile's ⋯ → Copy member ID)")
        return value

    def settings_user_ids(self) -> frozenset[str]:
        return frozenset(_entries(self.settings_users))


def _entries(value: str) -> list[str]:
    return [e.strip() for e in value.replace(";", ",").split(",") if e.strip()]


class SlackBot:
    platform = adapter.PLATFORM

    def __init__(self, *, settings: SlackSettings, service: TranscriptionService,
                 client: AsyncWebClient | None = None) -> None:
        self.settings = settings
        self.service = service
        api_url = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
        self.client = client or SlackWebClient(
            token=settings.bot_token.get_secret_value() or None, base_url=api_url, retry_handlers=retry_handlers(),
        )
        self.files = SlackFiles(settings.bot_token.get_secret_value(), api_url=api_url)
        self.delivery = SlackDelivery(client=self.client, files=self.files, service=service,
                                      bot_user_id=lambda: self.bot_user_id, status_after_s=settings.status_after_s)
        _quiet_token_warning()
        # process_before_response: an event is acked (HTTP 200, or the Socket Mode ack) only after its handler
        # has journaled the work, so a crash before that leaves Slack to redeliver it. Commands and shortcuts
        # ack first and do their lookups in a task of their own (_spawn): Slack wants their ack within 3 s.
        self.app = AsyncApp(
            client=self.client, signing_secret=settings.signing_secret.get_secret_value(),
            process_before_response=True, raise_error_for_unhandled_request=False,
        )
        self._seen = SeenEvents(service.settings.data_dir / "slack-events.sqlite3")
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._locales: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        """user -> (their Slack locale or None, when it was asked): users.info once a day per person."""
        self._socket: AsyncSocketModeHandler | None = None
        self._problem: str | None = "not started"
        self.bot_user_id: str | None = None
        self._register_handlers()
        service.register(self.platform, self)

    # -- Bot protocol ---------------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        if not self.settings.signing_secret.get_secret_value():
            # Anyone can sign with an empty secret: without one, only Socket Mode is served.
            log.warning("slack: SLACK_SIGNING_SECRET is empty, so /slack/events is not served (Socket Mode only)")
            return []
        return [web.post("/slack/events", self._http_events)]

    async def start(self) -> None:
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            if error_code(exc) == UNEXPECTED_ANSWER:
                raise ConfigError(f"Slack's Web API at {self.settings.api_url} did not answer with Slack's JSON "
                                  "(a proxy's error page?): check SLACK_API_URL and the network.") from None
            raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({error_code(exc)}).") from None
        self.bot_user_id = auth.get("user_id")
        app_token = self.settings.app_token.get_secret_value()
        if app_token:
            # The Socket Mode client retries a refused token forever; check it once and say so instead.
            try:
                await self.client.apps_connections_open(app_token=app_token)
            except SlackApiError as exc:
                raise ConfigError(f"Slack refused SLACK_APP_TOKEN ({error_code(exc)}): it must be an "
                                  "app-level token (xapp-…) with the connections:write scope.") from None
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            await self._socket.connect_async()
        self._problem = None
        log.info("slack: signed in as %s in %s (%s mode)", auth.get("user"), auth.get("team"),
                 "Socket" if self._socket else "HTTP")

    async def stop(self) -> None:
        self._problem = "stopped"
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        await self.files.close()
        await asyncio.to_thread(self._seen.close)

    def not_ready(self) -> str | None:
        if self._problem is None and self._socket is not None:
            client = self._socket.client
            session = client.current_session
            if client.closed or client.stale or session is None or session.closed:
                return "Slack Socket Mode is reconnecting"
        return self._problem

    async def _http_events(self, request: web.Request) -> web.Response:
        refused = await verified(request, self.settings.signing_secret.get_secret_value())
        if refused is not None:  # bolt never sees it: it would log the whole body
            return refused
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    # -- Slack handlers (the same for HTTP and Socket Mode) -------------------------------------------
    def _register_handlers(self) -> None:
        # Only events that may lead to work are remembered: chatter costs no write.
        self.app.event("message")(self._once(self._on_message, wants=adapter.is_new_share))
        self.app.event("file_shared")(self._once(self._on_file_shared, wants=lambda e: bool(e.get("file_id"))))
        self.app.command("/transcribe")(self._on_command)
        self.app.shortcut("transcribe")(self._on_shortcut)

    def _once(self, handler: Callable[[dict[str, Any]], Awaitable[None]], *,
              wants: Callable[[dict[str, Any]], bool]) -> Callable[..., Awaitable[None]]:
        """Run an event handler once per event_id, also across restarts (Slack retries with the same id)."""
        async def run(body: dict[str, Any], event: dict[str, Any]) -> None:
            if not wants(event):
                return
            event_id = str(body.get("event_id") or "")
            if event_id and not await asyncio.to_thread(self._seen.begin, event_id):
                log.info("slack: event %s already handled; retry dropped", event_id)
                return
            handled = False
            try:
                await handler(event)
                handled = True
            finally:  # a failed handler answers 500 (bolt), and Slack's retry is let through
                if event_id:
                    await asyncio.to_thread(self._seen.finish, event_id, handled=handled)

        return run

    def _spawn(self, work: Awaitable[None], respond: Any, language: str | None = None) -> None:
        task = asyncio.ensure_future(self._answering(work, respond, language))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _answering(self, work: Awaitable[None], respond: Any, language: str | None) -> None:
        """Run a command's work; when Slack cannot be reached at all, the person still gets a sentence."""
        try:
            await work
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("slack: a command could not reach Slack: %s", type(exc).__name__)
            await respond(text=localize(adapter.lookup_problem(UNEXPECTED_ANSWER), language))
        except ChatscribeError as exc:  # e.g. a setting that cannot be saved while the disk is full
            log.warning("slack: a command was refused: %s", exc.code)
            await respond(text=localize(exc.user_message, language))

    async def language(self, channel: str, user: str) -> str | None:
        """The language of the bot's words for `user` in `channel`: the channel's `replies` setting, else the
        person's Slack locale where the token may read it (users:read), else English."""
        chosen = await self.channel_settings(channel)
        return chosen.replies or chosen.replies_in(await self._user_locale(user) if user else None)

    async def _user_locale(self, user: str) -> str | None:
        now = time.monotonic()
        known = self._locales.get(user)
        if known is not None and now - known[1] < LOCALE_KEPT_S:
            return known[0]
        locale = None
        try:
            answer = await asyncio.wait_for(self.client.users_info(user=user, include_locale=True), LOCALE_LOOKUP_S)
            locale = (answer.get("user") or {}).get("locale")
        except SlackApiError as exc:  # no users:read: English, quietly, kept for a day (a 5xx page: not kept)
            log.debug("slack: no locale for %s: %s", user, error_code(exc))
            if error_code(exc) == UNEXPECTED_ANSWER:  # a proxy's 5xx page: English this once, asked again next time
                return None
        except (aiohttp.ClientError, TimeoutError) as exc:  # passing trouble: English this once, asked again next time
            log.debug("slack: no locale for %s: %s", user, type(exc).__name__)
            return None
        self._locales[user] = (locale if isinstance(locale, str) else None, now)
        self._locales.move_to_end(user)
        while len(self._locales) > 10_000:
            self._locales.popitem(last=False)
        return self._locales[user][0]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack: a command failed", exc_info=task.exception())

    async def _on_message(self, event: dict[str, Any]) -> None:
        if adapter.is_from_bot(event, self.bot_user_id) or not adapter.is_new_share(event):
            return
        channel = event["channel"]
        if not self.auto_enabled(channel):
            return
        user = str(event.get("user", ""))
        target = adapter.Target(channel, adapter.thread_of(event), user, replies=await self.language(channel, user))
        for file in await self._files_of(event, media_only=True):
            if self.claim(channel, file.id, event["ts"]):
                await self.submit(file, target, message_ts=event["ts"])

    async def _on_file_shared(self, event: dict[str, Any]) -> None:
        """Apps subscribed to file_shared hear of a share twice; the message event usually wins the claim."""
        channel, user = event.get("channel_id", ""), event.get("user_id", "")
        if not channel or user == self.bot_user_id or not self.auto_enabled(channel):
            return
        try:
            info = (await self.client.files_info(file=event["file_id"]))["file"]
        except SlackApiError as exc:
            log.warning("slack: files.info for a shared file failed: %s", error_code(exc))
            return
        file = adapter.parse_file(info)
        share = adapter.share_of(info, channel)
        if file is None or not file.is_media or share is None or not self.claim(channel, file.id, share[0]):
            return
        target = adapter.Target(channel, share[1], user, replies=await self.language(channel, user))
        await self.submit(file, target, message_ts=share[0])

    async def _on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = adapter.parse_command(command.get("text", ""), offered=self.service.settings.expected_languages)
        channel, user = command["channel_id"], command["user_id"]
        language = await self.language(channel, user)
        if parsed.action == "help":
            help_text = localize(adapter.HELP, language)
            await ack(text=f"{localize(parsed.problem, language)}\n\n{help_text}" if parsed.problem else help_text)
            return
        if parsed.action == "refused":  # a setting given a value it does not take: nothing is changed
            await ack(text=localize(parsed.problem or "", language))
            return
        if parsed.action == "settings":  # anyone in the channel may see them
            await ack(text=adapter.describe_settings(await self.channel_settings(channel), language))
            return
        await ack()
        # Everything else asks Slack something first: answered through response_url, after the ack.
        if parsed.action == "transcribe":
            self._spawn(self._transcribe_command(parsed, channel, user, respond, language), respond, language)
        else:
            self._spawn(self._setting_command(parsed, channel, user, respond, language), respond, language)

    async def _setting_command(self, parsed: adapter.Command, channel: str, user: str, respond: Any,
                               language: str | None = None) -> None:
        try:
            allowed = await self.may_change_settings(channel, user)
        except SlackApiError as exc:
            await respond(text=localize(adapter.lookup_problem(error_code(exc)), language))
            return
        if not allowed:
            await respond(text=localize(adapter.SETTINGS_NOT_ALLOWED, language))
            return
        if parsed.action == "forget":
            forgotten = await self.service.forget(self.platform, channel)
            await respond(text=localize(forgotten.sentence, language))
            return
        if parsed.change is not None:
            await asyncio.to_thread(self.service.preferences.change, self.platform, channel, parsed.change)
            # Said in the language now in force here: a `replies` change is confirmed in the new one.
            await respond(text=adapter.setting_changed(parsed.change, await self.language(channel, user)))

    async def may_change_settings(self, channel: str, user: str) -> bool:
        """Workspace admins and owners, SLACK_SETTINGS_USERS, the channel's creator, and anyone in a DM with the bot."""
        if user in self.settings.settings_user_ids():
            return True
        info = (await self.client.conversations_info(channel=channel)).get("channel") or {}
        if info.get("is_im") or (info.get("creator") and info.get("creator") == user):
            return True
        person = (await self.client.users_info(user=user)).get("user") or {}
        return bool(person.get("is_admin") or person.get("is_owner") or person.get("is_primary_owner"))

    async def is_member(self, channel: str, user: str) -> bool:
        """Whether `user` is in the conversation (conversations.members, read page by page until found)."""
        cursor = None
        for _ in range(MEMBER_PAGES):
            page = await self.client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            if user in (page.get("members") or ()):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return False
        log.warning("slack: %s has more than %d members; membership of %s not confirmed", channel,
                    MEMBER_PAGES * 1000, user)
        return False

    async def _transcribe_command(self, parsed: adapter.Command, channel: str, user: str, respond: Any,
                                  language: str | None = None) -> None:
        try:
            # A link may point into any conversation the bot is in: only its members may have it read.
            link = parsed.permalink
            if link is not None and link.channel != channel and not await self.is_member(link.channel, user):
                log.info("slack: %s linked a message of %s, which they are not in; refused", user, link.channel)
                await respond(text=localize(adapter.NOT_A_MEMBER, language))
                return
            message, where = await self._find_message(link, channel)
        except SlackApiError as exc:
            await respond(text=localize(adapter.lookup_problem(error_code(exc)), language))
            return
        explicit = parsed.permalink is not None
        files = await self._files_of(message, media_only=not explicit) if message else []
        if message is None or not files:
            await respond(text=localize(adapter.nothing_found(explicit), language))
            return
        thread = None if parsed.private else adapter.thread_of(message)
        target = adapter.Target(channel if parsed.private else where, thread, user, private=parsed.private,
                                replies=language)
        await respond(text=localize(adapter.accepted(files, private=parsed.private), language))
        for file in files:
            await self.submit(file, target, message_ts=message["ts"])

    async def _find_message(self, link: adapter.Permalink | None,
                            channel: str) -> tuple[Mapping[str, Any] | None, str]:
        if link is None:
            history = await self.client.conversations_history(channel=channel, limit=50)
            return adapter.latest_media_message(history.get("messages", [])), channel
        if link.thread_ts:  # a reply is only found through its thread
            answer = await self.client.conversations_replies(channel=link.channel, ts=link.thread_ts)
        else:
            answer = await self.client.conversations_history(channel=link.channel, latest=link.ts,
                                                             inclusive=True, limit=1)
        return adapter.message_with_ts(answer.get("messages", []), link.ts), link.channel

    async def _files_of(self, message: Mapping[str, Any], *, media_only: bool) -> list[adapter.SlackFile]:
        """The message's files; when Slack sent only ids (file_access: check_file_info), asked for in full.

        media_only=False is for a person pointing at a message: its audio/video if it has any, else every
        file, and the decoder decides.
        """
        files = []
        for raw in message.get("files") or ():
            if adapter.needs_lookup(raw):
                try:
                    raw = (await self.client.files_info(file=raw["id"]))["file"]
                except SlackApiError as exc:
                    log.warning("slack: files.info failed for a shared file: %s", error_code(exc))
                    continue
            file = adapter.parse_file(raw)
            if file is not None:
                files.append(file)
        media = [f for f in files if f.is_media]
        return media if media_only else media or files

    async def _on_shortcut(self, ack: Any, shortcut: dict[str, Any], respond: Any) -> None:
        await ack()
        self._spawn(self._transcribe_shortcut(shortcut, respond), respond)

    async def _transcribe_shortcut(self, shortcut: dict[str, Any], respond: Any) -> None:
        # The shortcut is used on a message the person is looking at, in its own channel: nothing to check.
        message, channel = shortcut.get("message") or {}, shortcut["channel"]["id"]
        user = shortcut["user"]["id"]
        language = await self.language(channel, user)
        files = await self._files_of(message, media_only=False)
        if not files:
            await respond(text=localize(adapter.nothing_found(True), language))
            return
        target = adapter.Target(channel, adapter.thread_of(message), user, replies=language)
        for file in files:
            await self.submit(file, target, message_ts=message["ts"])

    # -- accepting work -------------------------------------------------------------------------------
    def claim(self, channel: str, file_id: str, message_ts: str) -> bool:
        """One transcript per file share, whichever of message/file_shared events arrives first."""
        return _remember(self._claimed, (channel, file_id, message_ts))

    def auto_enabled(self, channel: str) -> bool:
        return self.service.preferences.settings(self.platform, channel).auto_or(self.settings.auto_transcribe)

    async def channel_settings(self, channel: str) -> ConversationSettings:
        return await asyncio.to_thread(self.service.preferences.settings, self.platform, channel)

    async def submit(self, file: adapter.SlackFile, target: adapter.Target, *, message_ts: str) -> None:
        request = adapter.media_request(file, target, message_ts=message_ts, fetch=self.fetcher({"url": file.url}))
        # The settings of the channel the work came from (a private answer too: it was asked for there).
        chosen = await self.channel_settings(target.channel)
        options = chosen.options(self.service.settings.expected_languages)
        try:
            job = await self.service.submit(request, options)
        except ChatscribeError as exc:
            log.info("slack: file %s not accepted: %s", file.id, exc.code)
            await self.delivery.slack.post_quietly(target, adapter.render_error(exc, file_name=file.name,
                                                                                locale=target.replies))
            return
        log.info("job=%s slack file %s (%s, %s bytes) in %s", job.id, file.id, file.mimetype, file.size,
                 target.channel)

    # -- Delivery protocol (the core's mechanism, with Slack's sender in slack_delivery.py) --------------
    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        return self.delivery.fetcher(reference)

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        await self.delivery.progress(job, update)

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        await self.delivery.deliver(job, outcome, receipt)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _quiet_token_warning() -> None:
    """bolt also reads SLACK_BOT_TOKEN from the environment and warns that the client's token wins: it does."""
    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _DropMessage) for f in bolt_log.filters):
        bolt_log.addFilter(_DropMessage("As you gave `client` as well"))


def _remember(seen: OrderedDict[Any, None], key: object, limit: int = 10_000) -> bool:
    """Add key to a bounded set; False when it was already there."""
    if key in seen:
        return False
    seen[key] = None
    if len(seen) > limit:
        seen.popitem(last=False)
    return True


__all__ = ["SlackBot", "SlackSettings"]
