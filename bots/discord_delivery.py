"""Discord's side of the journaled work: download media by reference, post and edit the status, send the answers.

Everything here works from the strings in a job's reference (channel, message, attachment, interaction
token), so a job accepted before a restart is fetched and answered the same way as a fresh one. The
life of an answer (status, edit rate, parts, retries) is the core's (core/delivery); this is Discord's sender.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.http import Route
from discord.utils import escape_markdown

from chatscribe.adapters import discord as adapter
from chatscribe.bots.logs import RedactingFilter, RedactSecrets
from chatscribe.core import (
    ChatscribeError,
    DownloadFailed,
    Fetch,
    MediaTooLarge,
    Preferences,
    Transcript,
    sentences,
)
from chatscribe.core.delivery import Courier, Limits, Place, Undeliverable
from chatscribe.core.jobs import Job

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)

ORIGINAL = "@original"
"""The status id of an interaction's job: its deferred response."""
DOWNLOAD_FAILED = sentences.download_failed("Discord")


def _escaped_length(text: str) -> int:
    """A status is sent markdown-escaped: measure what Discord will count."""
    return len(escape_markdown(text))


LIMITS = Limits(message_units=adapter.MESSAGE_LIMIT, edit_interval_s=2.0, edits_per_window=5, window_s=5.0,
                typing_every_s=8.0, measure=_escaped_length)
"""A status edit at most every 2 s per channel, and never more than Discord's 5 edits per 5 s there;
"typing…" shows for 10 s after each trigger."""
_GONE = (401, 404)
"""An interaction whose 15 minutes are over, or a message that was deleted."""


class DiscordSender:
    """What the core's delivery mechanism needs from Discord. A channel job's status is a reply to the
    command or voice message; an interaction's is its deferred response ("thinking…"), edited as `@original`."""

    limits = LIMITS

    def __init__(self, *, client: Callable[[], discord.Client], preferences: Preferences, max_parts: int) -> None:
        self._client = client
        self._preferences = preferences
        self._max_parts = max_parts
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # Attachments come from Discord's CDN without the bot token: a session of our own streams them.
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        source = adapter.source_of(reference)
        channel_id = reference["channel_id"]

        async def fetch(max_bytes: int) -> bytes:
            try:
                return await self._download(source.url, max_bytes)
            except DownloadFailed:
                if source.message_id is None:
                    raise
            # Attachment URLs are signed and expire; the message gives a fresh one.
            fresh = await self._fresh_url(channel_id, source)
            return await self._download(fresh, max_bytes)

        return fetch

    def place(self, job: Job) -> Place:
        return Place(adapter.target_of(job.request.reference).channel_id)

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> list[adapter.Reply]:
        return await self._render(adapter.target_of(job.request.reference), outcome)

    async def send(self, job: Job, part: adapter.Reply) -> None:
        if not await self._send(adapter.target_of(job.request.reference), part):
            raise Undeliverable("the channel or the interaction is gone, or the bot may not post there")

    async def post_status(self, job: Job, text: str) -> str:
        target = adapter.target_of(job.request.reference)
        try:
            if target.interaction_token:
                await self._edit_original(target, escape_markdown(text))
                return ORIGINAL
            message = await self._post(target, adapter.Reply(escape_markdown(text)))
        except discord.HTTPException as exc:
            if isinstance(exc, (discord.NotFound, discord.Forbidden)) or exc.status in _GONE:
                raise Undeliverable(f"HTTP {exc.status}") from exc
            raise
        return str(message.id)

    async def edit_status(self, job: Job, status_id: str, text: str) -> None:
        await self._edit(adapter.target_of(job.request.reference), status_id, escape_markdown(text))

    async def replace_status(self, job: Job, status_id: str, part: adapter.Reply) -> bool:
        if part.file is not None:
            return False
        try:
            await self._edit(adapter.target_of(job.request.reference), status_id, part.content)
        except discord.HTTPException as exc:
            if isinstance(exc, (discord.NotFound, discord.Forbidden)) or exc.status in _GONE:
                return False  # deleted, or the interaction expired: the answer is sent instead
            raise
        return True

    async def already_sent(self, job: Job, part: adapter.Reply) -> bool:
        return False

    async def find_status(self, job: Job) -> str | None:
        """The status of a process that died before noting its id: an interaction's is always its deferred
        response; a channel job's is the bot's reply to the job's message that begins as a status does,
        among the channel's latest messages (None without Read Message History: the answer is then sent)."""
        target = adapter.target_of(job.request.reference)
        if target.interaction_token:
            return ORIGINAL
        client = self._client()
        if not target.reply_to or client.user is None:
            return None
        starts = sentences.progress_starts(job.request.file_name, job.request.replies)
        starts = tuple(escape_markdown(start) for start in starts)
        try:
            latest = await client.http.logs_from(int(target.channel_id), 50)
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            log.info("discord: could not look for an earlier status in %s: %s", target.channel_id, exc)
            return None
        for message in latest:
            replied = (message.get("message_reference") or {}).get("message_id")
            if (str(message.get("author", {}).get("id")) == str(client.user.id) and str(replied) == target.reply_to
                    and str(message.get("content") or "").startswith(starts)):
                return str(message["id"])
        return None

    async def typing(self, job: Job) -> None:
        target = adapter.target_of(job.request.reference)
        if target.interaction_token is not None:  # interactions already show "thinking…"
            return
        try:
            await self._client().http.send_typing(int(target.channel_id))
        except (discord.HTTPException, aiohttp.ClientError) as exc:  # cosmetic: never fail the work for it
            log.debug("typing indicator failed: %s", exc)

    # -- used by the bot directly ----------------------------------------------------------------------

    async def answer_now(self, target: adapter.Target, error: ChatscribeError) -> None:
        """A refusal before any job exists (too large, busy): one message, no journal."""
        for reply in await self._render(target, error):
            await self._send(target, reply)

    # -- internals -----------------------------------------------------------------------------------

    async def _render(self, target: adapter.Target, outcome: Transcript | ChatscribeError) -> list[adapter.Reply]:
        # The server's settings with the channel's own over them (core/settings.py), as the bot reads them.
        scopes = (target.guild_id, target.channel_id) if target.guild_id else (target.channel_id,)
        chosen = await asyncio.to_thread(self._preferences.settings, adapter.PLATFORM, *scopes)
        return adapter.render_answer(outcome, max_parts=self._max_parts, file_format=chosen.file_extension,
                                     label=target.label, timestamps=chosen.timestamps, locale=target.replies)

    async def _send(self, target: adapter.Target, reply: adapter.Reply) -> bool:
        """Send one message; False when it can never arrive (gone, forbidden); raises to be retried."""
        try:
            if target.interaction_token and target.application_id:
                sent = await self._follow_up(target, reply)
                if sent is not None:
                    return sent
            await self._post(target, reply)
            return True
        except (discord.NotFound, discord.Forbidden) as exc:
            log.warning("cannot answer in channel %s: %s", target.channel_id, exc.text or exc.status)
            return False

    async def _follow_up(self, target: adapter.Target, reply: adapter.Reply) -> bool | None:
        """Answer through the interaction; None when its 15 minutes are over and the channel should be used."""
        # What Interaction.followup builds, from ids that survive a restart.
        webhook = discord.Webhook.from_state(
            {"id": int(target.application_id or 0), "type": 3, "token": target.interaction_token or ""},
            self._client()._connection)
        try:
            await webhook.send(reply.content, file=_file(reply), ephemeral=target.ephemeral, wait=True,
                               allowed_mentions=discord.AllowedMentions.none())
            return True
        except discord.HTTPException as exc:
            if exc.status not in _GONE:  # anything else is worth a retry
                raise
        if target.ephemeral:  # never post a private answer publicly
            log.warning("interaction expired before its private answer could be sent")
            return False
        log.info("interaction expired; answering in the channel instead")
        return None

    async def _post(self, target: adapter.Target, reply: adapter.Reply) -> discord.Message:
        client = self._client()
        guild_id = int(target.guild_id) if target.guild_id else None
        channel = client.get_partial_messageable(int(target.channel_id), guild_id=guild_id)
        reference = None
        if target.reply_to:  # a deleted original must not lose the answer
            reference = discord.MessageReference(message_id=int(target.reply_to), channel_id=channel.id,
                                                 fail_if_not_exists=False)
        return await channel.send(reply.content, file=_file(reply), reference=reference,  # type: ignore[arg-type]
                                  mention_author=False)

    async def _edit(self, target: adapter.Target, status_id: str, content: str) -> None:
        if status_id == ORIGINAL:
            await self._edit_original(target, content)
            return
        channel = self._client().get_partial_messageable(int(target.channel_id))
        await channel.get_partial_message(int(status_id)).edit(content=content)

    async def _edit_original(self, target: adapter.Target, content: str) -> None:
        """Edit the interaction's deferred response, as Interaction.edit_original_response does, from ids
        that survive a restart."""
        route = Route("PATCH", "/webhooks/{application_id}/{token}/messages/@original",
                      application_id=target.application_id, token=target.interaction_token)
        await self._client().http.request(route, json={"content": content, "allowed_mentions": {"parse": []}})

    async def _download(self, url: str, max_bytes: int) -> bytes:
        if self._session is None:
            raise DownloadFailed(sentences.RESTARTING)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise DownloadFailed(DOWNLOAD_FAILED, detail=f"HTTP {response.status}")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise MediaTooLarge(response.content_length, max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(None, max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DownloadFailed(DOWNLOAD_FAILED, detail=type(exc).__name__) from exc

    async def _fresh_url(self, channel_id: str, source: adapter.Source) -> str:
        channel = self._client().get_partial_messageable(int(channel_id))
        try:
            message = await channel.fetch_message(int(source.message_id or 0))
        except discord.HTTPException as exc:
            raise DownloadFailed(DOWNLOAD_FAILED, detail=f"message fetch: HTTP {exc.status}") from exc
        for attachment in message.attachments:
            if str(attachment.id) == source.attachment_id:
                return attachment.url
        raise DownloadFailed(sentences.FILE_DELETED)


def _file(reply: adapter.Reply) -> discord.File:
    """A fresh File per attempt: discord.py closes it after sending."""
    if reply.file is None:
        return discord.utils.MISSING
    return discord.File(io.BytesIO(reply.file.data), filename=reply.file.name)


def redact_tokens(token: str) -> None:
    """discord.py logs request URLs and gateway payloads at debug level: interaction tokens are in both.
    The log's one redaction (bots/logs.py) is put on those loggers too, for handlers other than ours."""
    for name in ("discord.http", "discord.webhook.async_", "discord.gateway", "discord.client", "discord.state"):
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(existing)
        logger.addFilter(RedactingFilter(RedactSecrets([token])))


class DiscordDelivery(Courier[adapter.Reply]):
    """The service's Delivery for Discord jobs: the core mechanism with Discord's sender."""

    def __init__(self, *, client: Callable[[], discord.Client], service: TranscriptionService,
                 status_after_s: float) -> None:
        self.discord = DiscordSender(client=client, preferences=service.preferences,
                                     max_parts=service.settings.max_parts)
        super().__init__(self.discord, note=service.note, status_after_s=status_after_s)
