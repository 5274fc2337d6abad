"""Sending to Telegram, and the service's Delivery for Telegram jobs.

`Sender` waits out flood control (429 retry_after), retries network errors and keeps replies working
when the original message was deleted. `TelegramDelivery` downloads a job's media from its journaled
reference, shows progress as one status message per job (edited at most once per 3 s per chat) and
turns that message into the first part of the answer, also after a restart (its id is journaled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from telegram import InputFile, Message, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from chatscribe.adapters import telegram as adapter
from chatscribe.core.errors import ChatscribeError, DownloadFailed
from chatscribe.core.jobs.journal import Job, ProgressUpdate, Receipt
from chatscribe.core.media import Fetch
from chatscribe.core.transcript import Transcript

if TYPE_CHECKING:
    from chatscribe.core.service import TranscriptionService

log = logging.getLogger(__name__)
T = TypeVar("T")

EDIT_INTERVAL_S = 3.0
"""Never more than one status edit per chat in this time: Telegram throttles busy chats."""
ACTION_INTERVAL_S = 4.5
"""A chat action shows for 5 s; repeat it a little before it fades."""
NETWORK_RETRIES = 5
DOWNLOAD_FAILED = "I couldn't download that file from Telegram; please send it again."


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


@dataclass(eq=False)
class _Status:
    """The one status message of a job, edited as it progresses and finally turned into part 1."""

    message_id: int | None = None
    last_action: float = float("-inf")
    done: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class NotRunning(RuntimeError):
    """Raised to the service so that it keeps the job and retries the delivery later."""


class TelegramDelivery:
    def __init__(self, *, sender: Sender, service: TranscriptionService, local_mode: bool,
                 chat_settings: Callable[[int], adapter.ChatSettings]) -> None:
        self.sender = sender
        self.service = service
        self.local_mode = local_mode
        self.stopped = False
        self._chat_settings = chat_settings
        self._status: dict[str, _Status] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._last_edit: dict[int, float] = {}
        self._background: set[asyncio.Future[None]] = set()

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

    def accepted(self, job: Job) -> None:
        """Show at once that the job was taken: the chat action, before any status message."""
        chat_id, _ = _where(job)
        status = self._status.setdefault(job.id, _Status())
        task = asyncio.ensure_future(self._typing(chat_id, status))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        if job.id in self._finished or self.stopped:
            return  # a late notification must not post a status after the answer
        status = self._status.setdefault(job.id, _Status())
        chat_id, reply_to = _where(job)
        text = adapter.progress_text(update)
        async with status.lock:
            if status.done:
                return
            now = time.monotonic()
            if status.message_id is None:
                sent = await self.sender.text(chat_id, reply_to, text)
                status.message_id = sent.message_id
                self._last_edit[chat_id] = now
                # Journaled, so that the answer still replaces this message after a restart.
                await self.service.note(job.id, "status_message_id", str(sent.message_id))
            elif now - self._last_edit.get(chat_id, float("-inf")) >= EDIT_INTERVAL_S:
                self._last_edit[chat_id] = now
                await self.sender.edit(chat_id, status.message_id, text)
        await self._typing(chat_id, status)

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        if self.stopped:
            raise NotRunning("the Telegram bot is stopped; the answer stays journaled")
        chat_id, reply_to = _where(job)
        status = self._status.get(job.id) or _Status()
        async with status.lock:  # waits for a status message still being sent
            status.done = True
        self._finish(job.id)
        status_id = status.message_id or _int(job.notes.get("status_message_id"))
        if isinstance(outcome, ChatscribeError):
            items: list[adapter.Outgoing] = [adapter.OutgoingText(adapter.error_text(outcome))]
        else:
            items = adapter.render_transcript(outcome, self._chat_settings(chat_id),
                                              max_parts=self.service.settings.max_parts,
                                              file_stem=job.request.file_name or "transcript")
        try:
            for index, item in enumerate(items):
                if index < receipt.parts_sent:
                    continue  # sent before a restart
                first_text = item.text if index == 0 and isinstance(item, adapter.OutgoingText) else None
                if status_id and first_text and await self.sender.edit(chat_id, status_id, first_text):
                    await receipt.part_sent()
                    continue
                await self.sender.send(chat_id, reply_to, item)
                await receipt.part_sent()
        except Forbidden as exc:  # blocked, or removed from the group: no retry can help
            log.warning("job=%s cannot be answered: %s", job.id, exc.message)

    def _finish(self, job_id: str) -> None:
        self._status.pop(job_id, None)
        self._finished[job_id] = None
        while len(self._finished) > 1000:
            self._finished.popitem(last=False)

    async def _typing(self, chat_id: int, status: _Status) -> None:
        now = time.monotonic()
        if status.done or now - status.last_action < ACTION_INTERVAL_S:
            return
        status.last_action = now
        await self.sender.typing(chat_id)


def _check_size(size_bytes: int | None, max_bytes: int, local_mode: bool) -> None:
    error = adapter.size_error(size_bytes, max_bytes, local_mode=local_mode)
    if error is not None:
        raise error


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
