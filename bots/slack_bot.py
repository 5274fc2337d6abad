"""Slack: slack-bolt's async app over the TranscriptionService.

HTTP mode serves `/slack/events` on the shared aiohttp server (bolt verifies the signing secret); Socket
Mode connects out when SLACK_APP_TOKEN is set. The same handlers serve both. Work is accepted with
`service.submit()` (journaled) and answered through `deliver()`, also after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from chatscribe.adapters import slack as adapter
from chatscribe.core.config import ENV_FILE
from chatscribe.core.errors import ChatscribeError, ConfigError
from chatscribe.core.jobs.journal import Job, ProgressUpdate, Receipt
from chatscribe.core.media import Fetch
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript

from .slack_files import SlackFiles

log = logging.getLogger(__name__)

# Slack errors that no retry can fix: answering is given up (and logged) instead of retried.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "msg_blocks_too_long", "invalid_blocks",
    "no_permission", "missing_scope", "user_not_in_channel", "restricted_action", "invalid_auth",
    "account_inactive", "token_revoked",
})


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


@dataclass
class _Status:
    """The "Transcribing…" message of one job: posted once, updated, then replaced by the answer."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ts: str | None = None
    last_update: float = 0.0
    done: bool = False


class SlackBot:
    platform = adapter.PLATFORM

    def __init__(self, *, settings: SlackSettings, service: TranscriptionService,
                 client: AsyncWebClient | None = None) -> None:
        self.settings = settings
        self.service = service
        api_url = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
        self.client = client or AsyncWebClient(
            token=settings.bot_token.get_secret_value() or None, base_url=api_url,
            retry_handlers=[AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
        )
        self.files = SlackFiles(settings.bot_token.get_secret_value(), api_url=api_url)
        _quiet_token_warning()
        self.app = AsyncApp(
            client=self.client, signing_secret=settings.signing_secret.get_secret_value(),
            process_before_response=False, raise_error_for_unhandled_request=False,
        )
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._claimed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._statuses: OrderedDict[str, _Status] = OrderedDict()
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
            raise ConfigError(f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}).") from None
        self.bot_user_id = auth.get("user_id")
        app_token = self.settings.app_token.get_secret_value()
        if app_token:
            # The Socket Mode client retries a refused token forever; check it once and say so instead.
            try:
                await self.client.apps_connections_open(app_token=app_token)
            except SlackApiError as exc:
                raise ConfigError(f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error')}): it must be an "
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
        await self.files.close()

    def not_ready(self) -> str | None:
        if self._problem is None and self._socket is not None:
            client = self._socket.client
            session = client.current_session
            if client.closed or client.stale or session is None or session.closed:
                return "Slack Socket Mode is reconnecting"
        return self._problem

    async def _http_events(self, request: web.Request) -> web.Response:
        bolt_response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    # -- Slack handlers (the same for HTTP and Socket Mode) -------------------------------------------
    def _register_handlers(self) -> None:
        self.app.middleware(self._drop_repeats)
        self.app.event("message")(self._on_message)
        self.app.event("file_shared")(self._on_file_shared)
        self.app.command("/transcribe")(self._on_command)
        self.app.shortcut("transcribe")(self._on_shortcut)

    async def _drop_repeats(self, body: dict[str, Any], next_: Any) -> BoltResponse | None:
        if body.get("type") == "event_callback" and not self.first_delivery(body):
            log.info("slack: event %s already handled; retry dropped", body.get("event_id"))
            return BoltResponse(status=200, body="")
        return await next_()  # type: ignore[no-any-return]

    async def _on_message(self, event: dict[str, Any]) -> None:
        if adapter.is_from_bot(event, self.bot_user_id) or not adapter.is_new_share(event):
            return
        channel = event["channel"]
        if not self.auto_enabled(channel):
            return
        target = adapter.Target(channel, adapter.thread_of(event), str(event.get("user", "")))
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
            log.warning("slack: files.info for a shared file failed: %s", exc.response.get("error"))
            return
        file = adapter.parse_file(info)
        share = adapter.share_of(info, channel)
        if file is None or not file.is_media or share is None or not self.claim(channel, file.id, share[0]):
            return
        await self.submit(file, adapter.Target(channel, share[1], user), message_ts=share[0])

    async def _on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = adapter.parse_command(command.get("text", ""))
        channel, user = command["channel_id"], command["user_id"]
        if parsed.action == "help":
            await ack(text=f"{parsed.problem}\n\n{adapter.HELP}" if parsed.problem else adapter.HELP)
        elif parsed.action in ("auto", "format"):
            self.service.preferences.set(self.platform, channel, parsed.action, parsed.value)
            await ack(text=adapter.setting_changed(parsed.action, parsed.value or ""))
        else:
            await ack()
            await self._transcribe_command(parsed, channel, user, respond)

    async def _transcribe_command(self, parsed: adapter.Command, channel: str, user: str, respond: Any) -> None:
        try:
            message, where = await self._find_message(parsed.permalink, channel)
        except SlackApiError as exc:
            await respond(text=adapter.lookup_problem(str(exc.response.get("error"))))
            return
        explicit = parsed.permalink is not None
        files = await self._files_of(message, media_only=not explicit) if message else []
        if message is None or not files:
            await respond(text=adapter.nothing_found(explicit))
            return
        thread = None if parsed.private else adapter.thread_of(message)
        target = adapter.Target(channel if parsed.private else where, thread, user, private=parsed.private)
        await respond(text=adapter.accepted(files, private=parsed.private))
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
                    log.warning("slack: files.info failed for a shared file: %s", exc.response.get("error"))
                    continue
            file = adapter.parse_file(raw)
            if file is not None:
                files.append(file)
        media = [f for f in files if f.is_media]
        return media if media_only else media or files

    async def _on_shortcut(self, ack: Any, shortcut: dict[str, Any], respond: Any) -> None:
        await ack()
        message, channel = shortcut.get("message") or {}, shortcut["channel"]["id"]
        files = await self._files_of(message, media_only=False)
        if not files:
            await respond(text=adapter.nothing_found(True))
            return
        target = adapter.Target(channel, adapter.thread_of(message), shortcut["user"]["id"])
        for file in files:
            await self.submit(file, target, message_ts=message["ts"])

    # -- accepting work -------------------------------------------------------------------------------
    def first_delivery(self, body: Mapping[str, Any]) -> bool:
        """False for an event already seen (Slack retries with the same event_id): acked and dropped."""
        event_id = body.get("event_id")
        return not event_id or _remember(self._seen_events, str(event_id))

    def claim(self, channel: str, file_id: str, message_ts: str) -> bool:
        """One transcript per file share, whichever of message/file_shared events arrives first."""
        return _remember(self._claimed, (channel, file_id, message_ts))

    def auto_enabled(self, channel: str) -> bool:
        default = "on" if self.settings.auto_transcribe else "off"
        return self.service.preferences.get(self.platform, channel, "auto", default) == "on"

    async def submit(self, file: adapter.SlackFile, target: adapter.Target, *, message_ts: str) -> None:
        request = adapter.media_request(file, target, message_ts=message_ts, fetch=self.fetcher({"url": file.url}))
        options = TranscribeOptions(expected_languages=self.service.settings.expected_languages)
        try:
            job = await self.service.submit(request, options)
        except ChatscribeError as exc:
            log.info("slack: file %s not accepted: %s", file.id, exc.code)
            await self._post_quietly(target, adapter.render_error(exc, file_name=file.name))
            return
        log.info("job=%s slack file %s (%s, %s bytes) in %s", job.id, file.id, file.mimetype, file.size,
                 target.channel)

    # -- Delivery protocol ----------------------------------------------------------------------------
    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        url = reference["url"]

        async def fetch(max_bytes: int) -> bytes:
            return await self.files.download(url, max_bytes)

        return fetch

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        target = adapter.target_of(job.request.reference)
        if target.private or (not update.detail and (update.eta_s or 0) < self.settings.status_after_s):
            return
        status = self._status(job)
        loop = asyncio.get_running_loop()
        async with status.lock:
            if status.done or (status.ts and loop.time() - status.last_update < 5):
                return
            status.last_update = loop.time()
            message = adapter.render_notice(adapter.status_text(update, job.request.file_name))
            if status.ts is None:
                answer = await self.client.chat_postMessage(
                    channel=target.channel, thread_ts=target.thread_ts, text=message.text, blocks=message.blocks())
                status.ts = answer["ts"]
                # a restarted process edits this message instead of leaving it behind
                await self.service.note(job.id, "status_ts", str(status.ts))
            else:
                await self.client.chat_update(channel=target.channel, ts=status.ts, text=message.text,
                                              blocks=message.blocks())

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        target = adapter.target_of(job.request.reference)
        parts = self._render(job, outcome, target)
        status = self._status(job)
        async with status.lock:
            status.done = True
            try:
                for index, part in enumerate(parts):
                    if index < receipt.parts_sent:
                        continue
                    replace = status.ts if index == 0 else None
                    await self._send(target, part, replace_ts=replace)
                    await receipt.part_sent()
            except SlackApiError as exc:
                error = str(exc.response.get("error"))
                if error not in PERMANENT_ERRORS:
                    raise
                log.error("job=%s cannot answer in %s: Slack says %s", job.id, target.channel, error)

    def _status(self, job: Job) -> _Status:
        # Finished ones stay (bounded) so a progress update that arrives late posts nothing.
        status = self._statuses.get(job.id)
        if status is None:
            status = self._statuses[job.id] = _Status(ts=job.notes.get("status_ts"))
            if len(self._statuses) > 1_000:
                self._statuses.popitem(last=False)
        return status

    def _render(self, job: Job, outcome: Transcript | ChatscribeError,
                target: adapter.Target) -> tuple[adapter.Part, ...]:
        name = job.request.file_name
        if isinstance(outcome, ChatscribeError):
            return (adapter.render_error(outcome, file_name=name),)
        fmt = self.service.preferences.get(self.platform, target.channel, "format", "txt") or "txt"
        # Files cannot be ephemeral: a private answer is always messages.
        max_parts = 1_000 if target.private else self.service.settings.max_parts
        return adapter.render_transcript(outcome, file_name=name, max_parts=max_parts, upload_format=fmt)

    async def _send(self, target: adapter.Target, part: adapter.Part, *, replace_ts: str | None = None) -> None:
        if isinstance(part, adapter.SlackUpload):
            await self.client.files_upload_v2(channel=target.channel, thread_ts=target.thread_ts,
                                              content=part.content, filename=part.filename, title=part.title)
        elif target.private:
            await self.client.chat_postEphemeral(channel=target.channel, user=target.user, text=part.text,
                                                 blocks=part.blocks(), thread_ts=target.thread_ts)
        elif replace_ts and await self._replace(target.channel, replace_ts, part):
            return
        else:
            await self.client.chat_postMessage(channel=target.channel, thread_ts=target.thread_ts, text=part.text,
                                               blocks=part.blocks(), unfurl_links=False, unfurl_media=False)

    async def _replace(self, channel: str, ts: str, message: adapter.SlackMessage) -> bool:
        """Turn the status message into the answer; False when it is gone (deleted) and a new one is needed."""
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks())
        except SlackApiError as exc:
            if exc.response.get("error") not in ("message_not_found", "cant_update_message"):
                raise
            return False
        return True

    async def _post_quietly(self, target: adapter.Target, message: adapter.SlackMessage) -> None:
        try:
            await self._send(target, message)
        except SlackApiError as exc:
            log.warning("slack: could not answer in %s: %s", target.channel, exc.response.get("error"))


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
