"""Slack's sender for the core's delivery mechanism (core/delivery): what only Slack knows about answering.

A job's status is a message in its thread ("Transcribing… 40%", chat.update at most once per 3 s per
channel), posted only when the answer is expected to take a while; a private (ephemeral) answer has
none, as an ephemeral message cannot be edited. A message whose acceptance was never recorded (a
SIGKILL between Slack's answer and the journal) is looked for in the thread before it is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from chatscribe.adapters import slack as adapter
from chatscribe.core import ChatscribeError, Fetch, Transcript, sentences
from chatscribe.core.delivery import Courier, Limits, Place, Undeliverable
from chatscribe.core.jobs import Job

from .slack_client import error_code
from .slack_files import SlackFiles

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)

LIMITS = Limits(message_units=adapter.SECTION_LIMIT * adapter.SECTIONS_PER_MESSAGE, edit_interval_s=3.0)
# Slack errors that no retry can fix: answering is given up (and logged) instead of retried.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "msg_blocks_too_long", "invalid_blocks",
    "no_permission", "missing_scope", "user_not_in_channel", "restricted_action", "invalid_auth",
    "account_inactive", "token_revoked",
})


class SlackSender:
    limits = LIMITS

    def __init__(self, *, client: AsyncWebClient, files: SlackFiles, service: TranscriptionService,
                 bot_user_id: Callable[[], str | None]) -> None:
        self.client = client
        self.files = files
        self._service = service
        self._bot_user_id = bot_user_id

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        url = reference["url"]

        async def fetch(max_bytes: int) -> bytes:
            return await self.files.download(url, max_bytes)

        return fetch

    def place(self, job: Job) -> Place:
        target = adapter.target_of(job.request.reference)
        return Place(target.channel, can_edit=not target.private)

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> tuple[adapter.Part, ...]:
        name = job.request.file_name
        if isinstance(outcome, ChatscribeError):
            return (adapter.render_error(outcome, file_name=name, locale=job.request.replies),)
        target = adapter.target_of(job.request.reference)
        # The channel's settings (core/settings.py), read as the bot's commands store them.
        chosen = await asyncio.to_thread(self._service.preferences.settings, adapter.PLATFORM, target.channel)
        # Files cannot be ephemeral: a private answer is always messages.
        max_parts = 1_000 if target.private else self._service.settings.max_parts
        return adapter.render_transcript(outcome, file_name=name, max_parts=max_parts,
                                         upload_format=chosen.file_extension, timestamps=chosen.timestamps,
                                         locale=job.request.replies)

    async def send(self, job: Job, part: adapter.Part) -> None:
        target = adapter.target_of(job.request.reference)
        with _permanent(target):
            await self.post(target, part)

    async def post_status(self, job: Job, text: str) -> str:
        target = adapter.target_of(job.request.reference)
        message = adapter.render_notice(text)
        with _permanent(target):
            answer = await self.client.chat_postMessage(channel=target.channel, thread_ts=target.thread_ts,
                                                        text=message.text, blocks=message.blocks())
        return str(answer["ts"])

    async def edit_status(self, job: Job, status_id: str, text: str) -> None:
        message = adapter.render_notice(text)
        await self.client.chat_update(channel=adapter.target_of(job.request.reference).channel, ts=status_id,
                                      text=message.text, blocks=message.blocks())

    async def replace_status(self, job: Job, status_id: str, part: adapter.Part) -> bool:
        """False when it is gone (deleted) and a new message is needed, or when the part is a file."""
        if not isinstance(part, adapter.SlackMessage):
            return False
        target = adapter.target_of(job.request.reference)
        try:
            with _permanent(target):
                await self.client.chat_update(channel=target.channel, ts=status_id, text=part.text,
                                              blocks=part.blocks())
        except SlackApiError as exc:
            if error_code(exc) not in ("message_not_found", "cant_update_message"):
                raise
            return False
        return True

    async def already_sent(self, job: Job, part: adapter.Part) -> bool:
        """Whether this bot already posted exactly this message there. Ephemeral messages and uploads cannot
        be looked up: those are sent again."""
        target = adapter.target_of(job.request.reference)
        if target.private or not isinstance(part, adapter.SlackMessage):
            return False
        return any(m.get("user") == self._bot_user_id() and m.get("text") == part.text
                   for m in await self._thread(target))

    async def find_status(self, job: Job) -> str | None:
        """This job's status in its thread: the bot's message that begins as its status does."""
        target = adapter.target_of(job.request.reference)
        starts = sentences.progress_starts(job.request.file_name, job.request.replies)
        starts = tuple(adapter.escape(start) for start in starts)
        for message in await self._thread(target):
            if message.get("user") == self._bot_user_id() and str(message.get("text") or "").startswith(starts):
                return str(message["ts"])
        return None

    async def typing(self, job: Job) -> None:
        return None  # Slack has no typing indicator for apps

    async def _thread(self, target: adapter.Target) -> list[Mapping[str, Any]]:
        """The messages of the answer's thread (or the channel's latest), to look for what a dead process sent."""
        try:
            if target.thread_ts:
                answer = await self.client.conversations_replies(channel=target.channel, ts=target.thread_ts)
            else:
                answer = await self.client.conversations_history(channel=target.channel, limit=50)
        except SlackApiError as exc:
            log.warning("slack: could not look for an earlier answer in %s: %s", target.channel, error_code(exc))
            return []
        return list(answer.get("messages") or ())

    # -- used by the bot directly ----------------------------------------------------------------------

    async def post(self, target: adapter.Target, part: adapter.Part) -> None:
        if isinstance(part, adapter.SlackUpload):
            await self.client.files_upload_v2(channel=target.channel, thread_ts=target.thread_ts,
                                              content=part.content, filename=part.filename, title=part.title)
        elif target.private:
            await self.client.chat_postEphemeral(channel=target.channel, user=target.user, text=part.text,
                                                 blocks=part.blocks(), thread_ts=target.thread_ts)
        else:
            await self.client.chat_postMessage(channel=target.channel, thread_ts=target.thread_ts, text=part.text,
                                               blocks=part.blocks(), unfurl_links=False, unfurl_media=False)

    async def post_quietly(self, target: adapter.Target, message: adapter.SlackMessage) -> None:
        """A refusal before any job exists: one message, its failure only logged."""
        try:
            await self.post(target, message)
        except SlackApiError as exc:
            log.warning("slack: could not answer in %s: %s", target.channel, error_code(exc))


class SlackDelivery(Courier[adapter.Part]):
    """The service's Delivery for Slack jobs: the core mechanism with Slack's sender."""

    def __init__(self, *, client: AsyncWebClient, files: SlackFiles, service: TranscriptionService,
                 bot_user_id: Callable[[], str | None], status_after_s: float) -> None:
        self.slack = SlackSender(client=client, files=files, service=service, bot_user_id=bot_user_id)
        super().__init__(self.slack, note=service.note, status_after_s=status_after_s)


@contextlib.contextmanager
def _permanent(target: adapter.Target) -> Iterator[None]:
    """A Slack error that no retry can fix becomes Undeliverable (logged, given up); others are retried."""
    try:
        yield
    except SlackApiError as exc:
        if error_code(exc) in PERMANENT_ERRORS:
            raise Undeliverable(f"Slack says {error_code(exc)} in {target.channel}") from exc
        raise
