"""Discord's side of the journaled work: download media by reference, show typing, send the answers.

Everything here works from the strings in a job's reference (channel, message, attachment, interaction
token), so a job accepted before a restart is fetched and answered the same way as a fresh one.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from collections.abc import Callable, Mapping

import aiohttp
import discord

from chatscribe.adapters import discord as adapter
from chatscribe.core.errors import ChatscribeError, DownloadFailed, MediaTooLarge
from chatscribe.core.jobs.journal import Job, ProgressUpdate, Receipt
from chatscribe.core.media import Fetch
from chatscribe.core.preferences import Preferences
from chatscribe.core.transcript import Transcript

log = logging.getLogger(__name__)

FILE_FORMAT = "file_format"
"""Per-server preference: the file type of transcripts too long for a few messages."""
TYPING_EVERY_S = 8.0  # Discord shows "typing…" for 10 s after each trigger
DOWNLOAD_FAILED = "I couldn't download that file from Discord; please send it again."
FILE_DELETED = "That file was deleted before I could transcribe it."
_TOKEN_IN_PATH = re.compile(r"/(webhooks|interactions)/(\d+)/[^/\s?'\"]+")
_TOKEN_IN_PAYLOAD = re.compile(r"""(['"]token['"]:\s*['"])[^'"]+""")


class DiscordDelivery:
    def __init__(self, *, client: Callable[[], discord.Client], preferences: Preferences, max_parts: int) -> None:
        self._client = client
        self._preferences = preferences
        self._max_parts = max_parts
        self._session: aiohttp.ClientSession | None = None
        self._typing: dict[str, float] = {}

    async def open(self) -> None:
        # Attachments come from Discord's CDN without the bot token: a session of our own streams them.
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the service's Delivery ----------------------------------------------------------------------

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

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        target = adapter.target_of(job.request.reference)
        if target.interaction_token is None:  # interactions already show "thinking…"
            await self.typing(job.id, target.channel_id)

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        self._typing.pop(job.id, None)
        target = adapter.target_of(job.request.reference)
        replies = await self._render(target, outcome)
        for reply in replies[job.parts_sent:]:  # a resumed job skips what Discord already accepted
            if not await self._send(target, reply):
                return
            await receipt.part_sent()

    # -- used by the bot directly ----------------------------------------------------------------------

    async def answer_now(self, target: adapter.Target, error: ChatscribeError) -> None:
        """A refusal before any job exists (too large, busy): one message, no journal."""
        for reply in await self._render(target, error):
            await self._send(target, reply)

    async def typing(self, job_id: str, channel_id: str) -> None:
        now = time.monotonic()
        if now - self._typing.get(job_id, 0.0) < TYPING_EVERY_S:
            return
        self._typing[job_id] = now
        try:
            await self._client().http.send_typing(int(channel_id))
        except (discord.HTTPException, aiohttp.ClientError) as exc:  # cosmetic: never fail the work for it
            log.debug("typing indicator failed: %s", exc)

    # -- internals -----------------------------------------------------------------------------------

    async def _render(self, target: adapter.Target, outcome: Transcript | ChatscribeError) -> list[adapter.Reply]:
        file_format = "txt"
        if target.guild_id is not None:
            stored = await asyncio.to_thread(self._preferences.get, adapter.PLATFORM, target.guild_id, FILE_FORMAT)
            file_format = stored or "txt"
        return adapter.render_answer(outcome, max_parts=self._max_parts, file_format=file_format,
                                     label=target.label)

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
            if exc.status not in (401, 404):  # anything else is worth a retry
                raise
        if target.ephemeral:  # never post a private answer publicly
            log.warning("interaction expired before its private answer could be sent")
            return False
        log.info("interaction expired; answering in the channel instead")
        return None

    async def _post(self, target: adapter.Target, reply: adapter.Reply) -> None:
        client = self._client()
        guild_id = int(target.guild_id) if target.guild_id else None
        channel = client.get_partial_messageable(int(target.channel_id), guild_id=guild_id)
        reference = None
        if target.reply_to:  # a deleted original must not lose the answer
            reference = discord.MessageReference(message_id=int(target.reply_to), channel_id=channel.id,
                                                 fail_if_not_exists=False)
        await channel.send(reply.content, file=_file(reply), reference=reference,  # type: ignore[arg-type]
                           mention_author=False)

    async def _download(self, url: str, max_bytes: int) -> bytes:
        if self._session is None:
            raise DownloadFailed("I'm restarting: please send that again in a minute.")
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
        raise DownloadFailed(FILE_DELETED)


def _file(reply: adapter.Reply) -> discord.File:
    """A fresh File per attempt: discord.py closes it after sending."""
    if reply.file is None:
        return discord.utils.MISSING
    return discord.File(io.BytesIO(reply.file.data), filename=reply.file.name)


class _Redact(logging.Filter):
    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _TOKEN_IN_PATH.sub(r"/\1/\2/[redacted]", message)
        cleaned = _TOKEN_IN_PAYLOAD.sub(r"\1[redacted]", cleaned)
        if self._token:
            cleaned = cleaned.replace(self._token, "[redacted]")
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_tokens(token: str) -> None:
    """discord.py logs request URLs and gateway payloads at debug level: interaction tokens are in both."""
    for name in ("discord.http", "discord.webhook.async_", "discord.gateway", "discord.client", "discord.state"):
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, _Redact)]:
            logger.removeFilter(existing)
        logger.addFilter(_Redact(token))
