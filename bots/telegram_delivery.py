"""Sending to Telegram, and the service's Delivery for Telegram jobs.

`Sender` waits out flood control (429 retry_after), retries network errors and keeps replies working
when the original message was deleted. `TelegramSender` is what the core's delivery mechanism
(core/delivery) needs from Telegram: download a job's media from its journaled reference, render and
send the answer, post and edit the status message (at most once per 3 s per chat: Telegram throttles
busy chats). In private chats the status is a draft message instead (Bot API `sendMessageDraft`, where the
python-telegram-bot in use has it): an ephemeral preview that the answer, sent as new messages, replaces.
`TelegramDelivery` is that mechanism with this sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from telegram import InputFile, Message, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from chatscribe.adapters import telegram as adapter
from chatscribe.core import (
    ChatscribeError,
    ConversationSettings,
    DownloadFailed,
    Fetch,
    Transcript,
    sentences,
    utf16_units,
)
from chatscribe.core.delivery import Courier, Limits, Place, Undeliverable
from chatscribe.core.jobs import Job

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)
T = TypeVar("T")

EDIT_INTERVAL_S = 3.0
"""Never more than one status edit per chat in this time: Telegram throttles busy chats."""
ACTION_INTERVAL_S = 4.5
"""A chat action shows for 5 s; repeat it a little before it fades."""
NETWORK_RETRIES = 5
DOWNLOAD_FAILED = sentences.download_failed("Telegram")


class Sender:
    def __init__(self, app: Application) -> None:  # type: ignore[type-arg]
        self.app = app

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Wait out flood control and retry network errors; other errors are the caller's."""
        pause = 1.0
        for attempt in range(NETWORK_RETRIES + 1):
            try:
                return await make()
            except RetryAfter as exc:
                wait = retry_after_s(exc)
                log.info("telegram: flood control, waiting %.0f s", wait)
                await asyncio.sleep(wait)
            except (BadRequest, InvalidToken):  # NetworkError subclasses that no retry can fix
                raise
            except NetworkError:
                if attempt == NETWORK_RETRIES:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
        return await make()

    async def reply(self, message: Message, text: str) -> Message:
        return await self.text(message.chat_id, message.message_id, text)

    async def text(self, chat_id: int, reply_to: int | None, text: str) -> Message:
        return await self._with_reply_fallback(
            lambda reply: self.app.bot.send_message(chat_id, text, reply_parameters=reply), reply_to)

    async def send(self, chat_id: int, reply_to: int | None, item: adapter.Outgoing) -> Message:
        if isinstance(item, adapter.OutgoingText):
            return await self.text(chat_id, reply_to, item.text)

        def send_document(reply: ReplyParameters | None) -> Awaitable[Message]:
            document = InputFile(item.data, filename=item.file_name)
            return self.app.bot.send_document(chat_id, document, caption=item.caption, reply_parameters=reply)

        return await self._with_reply_fallback(send_document, reply_to)

    async def edit(self, chat_id: int, message_id: int, text: str) -> bool:
        """False when the message is gone; True also when it already says `text`."""
        try:
            await self.call(lambda: self.app.bot.edit_message_text(text, chat_id, message_id))
        except BadRequest as exc:
            return "not modified" in exc.message.lower()
        return True

    async def typing(self, chat_id: int) -> None:
        with contextlib.suppress(TelegramError):  # only decoration: never worth an error
            await self.app.bot.send_chat_action(chat_id, ChatAction.TYPING)

    async def _with_reply_fallback(self, send: Callable[[ReplyParameters | None], Awaitable[Message]],
                                   reply_to: int | None) -> Message:
        if reply_to is None:
            return await self.call(lambda: send(None))
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True)
        try:
            return await self.call(lambda: send(reply))
        except BadRequest as exc:
            if "replied" not in exc.message.lower():
                raise
            # The original message was deleted and the server ignored allow_sending_without_reply.
            return await self.call(lambda: send(None))


DRAFT_LASTS_S = 30.0
"""Telegram shows a draft for 30 s after its last update (Bot API, sendMessageDraft)."""
LIMITS = Limits(message_units=adapter.MESSAGE_LIMIT, measure=utf16_units, edit_interval_s=EDIT_INTERVAL_S,
                typing_every_s=ACTION_INTERVAL_S, draft_lasts_s=DRAFT_LASTS_S)


class TelegramSender:
    """The core Courier's sender for Telegram: what only Telegram knows about answering a job."""

    limits = LIMITS

    def __init__(self, *, sender: Sender, max_parts: int, local_mode: bool,
                 chat_settings: Callable[[int], ConversationSettings]) -> None:
        self.sender = sender
        self.max_parts = max_parts
        self.local_mode = local_mode
        self._chat_settings = chat_settings
        self.drafts = hasattr(sender.app.bot, "send_message_draft")
        """python-telegram-bot 22.6+ has sendMessageDraft; off for good once the Bot API says it has none."""

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        file_id = reference["file_id"]
        bot = self.sender.app.bot
        call = self.sender.call
        local_mode = self.local_mode

        async def fetch(max_bytes: int) -> bytes:
            try:
                file = await call(lambda: bot.get_file(file_id))
                _check_size(file.file_size, max_bytes, local_mode)
                data = bytes(await call(file.download_as_bytearray))
            except BadRequest as exc:
                if "too big" in exc.message.lower():
                    limit = adapter.download_limit(max_bytes, local_mode=local_mode)
                    _check_size(limit + 1, max_bytes, local_mode)
                raise DownloadFailed(DOWNLOAD_FAILED, detail=exc.message) from exc
            except TelegramError as exc:
                raise DownloadFailed(DOWNLOAD_FAILED, detail=type(exc).__name__) from exc
            _check_size(len(data), max_bytes, local_mode)
            return data

        return fetch

    def place(self, job: Job) -> Place:
        return Place(job.request.reference["chat_id"])

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> list[adapter.Outgoing]:
        if isinstance(outcome, ChatscribeError):
            return [adapter.OutgoingText(adapter.error_text(outcome, job.request.replies))]
        chat_id, _ = _where(job)
        return adapter.render_transcript(outcome, self._chat_settings(chat_id), max_parts=self.max_parts,
                                         file_stem=job.request.file_name or "transcript",
                                         locale=job.request.replies)

    async def send(self, job: Job, part: adapter.Outgoing) -> None:
        chat_id, reply_to = _where(job)
        with _undeliverable():
            await self.sender.send(chat_id, reply_to, part)

    async def post_status(self, job: Job, text: str) -> str:
        chat_id, reply_to = _where(job)
        with _undeliverable():
            sent = await self.sender.text(chat_id, reply_to, text)
        return str(sent.message_id)

    async def edit_status(self, job: Job, status_id: str, text: str) -> None:
        with _undeliverable():
            await self.sender.edit(_where(job)[0], int(status_id), text)

    async def preview(self, job: Job, text: str) -> bool:
        """The status as a draft message: Telegram has them in private chats only (positive chat ids;
        groups' are negative). False sends the courier back to a status message and its edits."""
        chat_id, _ = _where(job)
        if not self.drafts or chat_id <= 0:
            return False
        bot = self.sender.app.bot
        try:
            with _undeliverable():
                await self.sender.call(lambda: bot.send_message_draft(chat_id, _draft_id(job), text))
        except InvalidToken as exc:  # a 404: a Bot API server without the method
            log.info("telegram: no draft messages here (%s); status messages are edited instead", exc.message)
            self.drafts = False
            return False
        except TelegramError as exc:  # refused for this chat: its status is a message
            log.info("telegram: draft refused (%s); this status is a message", exc.message)
            return False
        return True

    async def replace_status(self, job: Job, status_id: str, part: adapter.Outgoing) -> bool:
        if not isinstance(part, adapter.OutgoingText):
            return False
        with _undeliverable():
            return await self.sender.edit(_where(job)[0], int(status_id), part.text)

    async def already_sent(self, job: Job, part: adapter.Outgoing) -> bool:
        return False  # a bot cannot read a chat's history: sent twice rather than never

    async def find_status(self, job: Job) -> str | None:
        return None  # a bot cannot read the chat's history: the answer comes as new messages

    async def typing(self, job: Job) -> None:
        await self.sender.typing(_where(job)[0])


class TelegramDelivery(Courier[adapter.Outgoing]):
    """The service's Delivery for Telegram jobs: the core mechanism with Telegram's sender."""

    def __init__(self, *, sender: Sender, service: TranscriptionService, local_mode: bool,
                 chat_settings: Callable[[int], ConversationSettings]) -> None:
        super().__init__(TelegramSender(sender=sender, max_parts=service.settings.max_parts, local_mode=local_mode,
                                        chat_settings=chat_settings), note=service.note)


@contextlib.contextmanager
def _undeliverable() -> Iterator[None]:
    try:
        yield
    except Forbidden as exc:  # blocked, or removed from the group: no retry can help
        raise Undeliverable(exc.message) from exc


def _check_size(size_bytes: int | None, max_bytes: int, local_mode: bool) -> None:
    error = adapter.size_error(size_bytes, max_bytes, local_mode=local_mode)
    if error is not None:
        raise error


def _draft_id(job: Job) -> int:
    """The job's draft id: stable (its updates animate into each other), non-zero, within 31 bits."""
    return int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big") % (2**31 - 1) + 1


def _where(job: Job) -> tuple[int, int | None]:
    reference = job.request.reference
    return int(reference["chat_id"]), _int(reference.get("message_id"))


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns about its int -> timedelta migration on access
        warnings.simplefilter("ignore")
        value = exc.retry_after
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    return max(0.5, seconds)
