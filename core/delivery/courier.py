"""The one delivery mechanism: the whole life of an answer in a chat, for every platform.

A job's status message is posted once (when the answer is expected to take a while), edited at the
rate the platform tolerates with the queue position while the job waits and the share done plus an
ETA while it runs, and turned into the first part of the answer at the end. After a restart the
status message is found again in the job's notes and the parts the platform already accepted (the
Receipt's count) are skipped. A place where no message can be edited (an ephemeral reply, a thread the
bot may not post in) gets no status: the answer is only sent.

Each platform supplies a `Sender` (render an answer into its messages, send one, post and edit the
status, rebuild a download) and its `Limits`; the service's retries with back-off are in retry.py.

Live text: while a note is transcribed the ProgressUpdate carries the text decoded so far, and
`_status_text` shows it after the sentence; when it outgrows one message only its tail is shown (cut at a
word, after an ellipsis) so that the status stays under `limits.message_units`. The edits keep the same
Throttle, so live text never makes the status move faster; senders do not change.

Drafts: where a platform has an ephemeral live preview (Telegram's draft messages in private chats), its
sender offers `preview` (the `Previews` protocol) and the status is shown there instead of as a message,
through the same Throttle, and shown again before the platform lets it fade (`Limits.draft_lasts_s`).
There is then no status message to turn into the answer: the answer is sent as new messages, which is
what makes such a preview permanent. Where `preview` answers False (a group, an older library, the
platform refusing) the status message and its edits are used, as everywhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .. import sentences
from ..errors import ChatscribeError
from ..i18n import localize
from ..jobs.journal import Delivery, Job, ProgressUpdate, Receipt
from ..jobs.runner import SegmentDone
from ..media import Fetch
from ..transcript import Transcript
from .limits import Limits, Throttle

log = logging.getLogger(__name__)

P = TypeVar("P")
STATUS_NOTE = "status"
"""Job note: the status message's id, so that a restarted process edits it into the answer."""
_OLD_STATUS_NOTES = ("status_message_id", "status_ts")  # written by earlier versions (Telegram, Slack)
POSTING = "posting"
"""The status note while the status is being posted: a process that dies before its id is noted leaves
this, and the next one asks the sender to find the message (where the platform's history can be read)."""
FINISHED_KEPT = 1000
"""Finished jobs remembered, so that a progress report arriving after the answer posts nothing."""


@dataclass(frozen=True, slots=True)
class Place:
    key: str
    """Where the platform counts edits (a chat, a channel)."""
    can_edit: bool = True
    """False where no message can be edited: no status is shown, the answer is only sent."""


class Undeliverable(Exception):
    """Raised by a sender when no retry can help (the bot was blocked or removed, the channel is gone)."""


class NotRunning(RuntimeError):
    """Raised to the service so that it keeps the job and retries the delivery later."""


class Previews(Protocol):
    """What a sender offers, besides `Sender`, where its platform has an ephemeral live preview (a draft)."""

    async def preview(self, job: Job, text: str) -> bool:
        """Show `text` (plain, as a status) as this job's draft; False where no draft can be shown there
        (the status message is used instead). Undeliverable as for post_status."""
        ...


class Sender(Protocol[P]):
    """What a platform supplies; P is its kind of outgoing message."""

    limits: Limits

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        """Rebuild the download of a journaled job's media from its platform reference."""
        ...

    def place(self, job: Job) -> Place: ...

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> Sequence[P]:
        """The answer as the platform's messages, in order (the sentences from core.sentences)."""
        ...

    async def send(self, job: Job, part: P) -> None:
        """Send one message; raise Undeliverable when it can never arrive, anything else to be retried."""
        ...

    async def post_status(self, job: Job, text: str) -> str:
        """Post the status message (plain text, to render in the platform's markup); returns its id.
        Undeliverable when it cannot be posted there: the job goes on without a status."""
        ...

    async def edit_status(self, job: Job, status_id: str, text: str) -> None: ...

    async def replace_status(self, job: Job, status_id: str, part: P) -> bool:
        """Turn the status message into `part`; False when that cannot be (deleted, or a file)."""
        ...

    async def already_sent(self, job: Job, part: P) -> bool:
        """Whether `part` already arrived (a send whose acceptance was never recorded); False if unknowable."""
        ...

    async def find_status(self, job: Job) -> str | None:
        """The id of this job's status message, posted by a process that died before noting it; None if
        it cannot be known (the answer is then sent as new messages, the old status left as it was)."""
        ...

    async def typing(self, job: Job) -> None:
        """Show that the bot is working (best effort, never raises)."""
        ...


@dataclass(eq=False)
class _Status:
    message_id: str | None = None
    lost: bool = False
    """Posted by a process that died before noting its id: looked for once (Sender.find_status)."""
    unavailable: bool = False
    """Posting it failed (no permission there): the job goes on without one."""
    draft: str | None = None
    """The status last shown as a draft (Previews), instead of a status message."""
    no_draft: bool = False
    """The sender showed no draft for this job: its status is a message."""
    draft_at: float = float("-inf")
    refresher: asyncio.Task[None] | None = None
    shown_text: str | None = None
    """The live text the status shows now."""
    pending: ProgressUpdate | None = None
    """An update with new words the rate held back, shown by `trailing` when the rate allows."""
    trailing: asyncio.Task[None] | None = None
    done: bool = False
    last_typing: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Courier(Generic[P]):
    """The service's Delivery for one platform, built from that platform's sender."""

    def __init__(self, sender: Sender[P], *, note: Callable[[str, str, str], Awaitable[None]],
                 status_after_s: float = 0.0) -> None:
        """`note(job_id, key, value)`: remember a value with the job across restarts (the service's).
        `status_after_s`: post a status only when the answer is expected to take longer than this."""
        self.sender = sender
        self.limits = sender.limits
        self.status_after_s = status_after_s
        self.stopped = False
        self._note = note
        self._throttle = Throttle(sender.limits)
        self._preview = getattr(sender, "preview", None)
        """Previews.preview when the platform has drafts, else None."""
        self._status: OrderedDict[str, _Status] = OrderedDict()
        """Per job, oldest first; finished ones are kept (bounded) so that a progress report arriving late
        posts nothing and a retried delivery still edits the status into the answer."""
        self._background: set[asyncio.Future[None]] = set()

    def stop(self) -> None:
        """From now on answers stay journaled (delivered by the next start) and progress is not shown."""
        self.stopped = True
        for task in list(self._background):  # typing, drafts shown again, trailing edits: none matter now
            task.cancel()

    # -- the service's Delivery ----------------------------------------------------------------------

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        return self.sender.fetcher(reference)

    def accepted(self, job: Job) -> None:
        """Show at once that the job was taken (the typing indicator), before any status message."""
        self._in_background(self._typing(job, self._of(job)))

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        if self.stopped:
            return
        status = self._of(job)
        place = self.sender.place(job)
        async with status.lock:
            if status.done:
                return  # a late notification must not post a status after the answer
            await self._recover(job, status)
            await self._show(job, place, status, update)
        await self._typing(job, status)

    async def _show(self, job: Job, place: Place, status: _Status, update: ProgressUpdate) -> None:
        """Post, draft or edit the status as the rate allows. New words the rate holds back are shown as soon
        as it allows (a trailing edit), so the text decoded last never waits for the next report."""
        if (status.message_id is not None or status.draft is not None) and not self._throttle.ready(place.key):
            if update.text and update.text != status.shown_text:
                status.pending = update
                self._trail(job, place, status)
            return
        status.pending = None
        text = _status_text(job, update, self.limits)
        if status.message_id is None and self._drafts(place, status) and (
                status.draft is not None or self._wanted(place, status, update)):
            await self._draft(job, place, status, text)
        if status.message_id is None and not self._drafts(place, status):  # also a draft just refused
            if self._wanted(place, status, update):
                await self._post(job, place, status, text)
        elif status.message_id is not None:
            self._throttle.took(place.key)
            await self.sender.edit_status(job, status.message_id, text)
        status.shown_text = update.text

    def _trail(self, job: Job, place: Place, status: _Status) -> None:
        if status.trailing is None or status.trailing.done():
            status.trailing = self._in_background(self._trailing(job, place, status))

    async def _trailing(self, job: Job, place: Place, status: _Status) -> None:
        while True:
            # A rate to keep, not a synchronisation: the platform's edit interval for this place.
            await asyncio.sleep(max(0.01, self._throttle.wait_s(place.key)))
            async with status.lock:
                if status.done or self.stopped or status.pending is None:
                    return
                if not self._throttle.ready(place.key):
                    continue  # another job of this place took the turn
                update, status.pending = status.pending, None
                try:
                    await self._show(job, place, status, update)
                except Exception as exc:  # a status is best effort: the job goes on
                    log.info("job=%s: the status could not be updated: %s", job.id, exc)
                return

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        if self.stopped:
            raise NotRunning("the bot is stopped; the answer stays journaled")
        status = self._of(job)
        async with status.lock:  # waits for a status message still being posted
            status.done = True
            for task in (status.refresher, status.trailing):
                if task is not None:
                    task.cancel()
            await self._recover(job, status)
        self._forget_oldest()
        place = self.sender.place(job)
        parts = await self.sender.render(job, outcome)
        try:
            for index, part in enumerate(parts):
                if index < receipt.parts_sent:
                    continue  # accepted before a restart or a failed try
                if receipt.uncertain and await self.sender.already_sent(job, part):
                    # Sent (or edited into the status) by a process that died before it was recorded.
                    log.info("job=%s message %d had arrived before the restart", job.id, index + 1)
                else:
                    await receipt.sending()
                    replaced = index == 0 and status.message_id is not None and await self._replace(
                        job, place, status.message_id, part)
                    if not replaced:
                        await self.sender.send(job, part)
                await receipt.part_sent()
        except Undeliverable as exc:
            log.warning("job=%s cannot be answered: %s", job.id, exc)

    # -- internals -----------------------------------------------------------------------------------

    def _of(self, job: Job) -> _Status:
        status = self._status.get(job.id)
        if status is None:
            noted = job.notes.get(STATUS_NOTE) or next(
                (job.notes[k] for k in _OLD_STATUS_NOTES if job.notes.get(k)), None)
            lost = noted == POSTING
            status = self._status[job.id] = _Status(message_id=None if lost else noted, lost=lost)
        return status

    async def _recover(self, job: Job, status: _Status) -> None:
        if status.lost:
            status.lost = False
            status.message_id = await self.sender.find_status(job)
            if status.message_id is not None:
                await self._note(job.id, STATUS_NOTE, status.message_id)

    def _wanted(self, place: Place, status: _Status, update: ProgressUpdate) -> bool:
        if not place.can_edit or status.unavailable:
            return False
        return bool(update.detail) or (update.eta_s or 0.0) >= self.status_after_s

    def _drafts(self, place: Place, status: _Status) -> bool:
        return self._preview is not None and place.can_edit and not (status.no_draft or status.unavailable)

    async def _draft(self, job: Job, place: Place, status: _Status, text: str) -> None:
        assert self._preview is not None
        try:
            shown = await self._preview(job, text)
        except Undeliverable as exc:
            log.info("job=%s goes on without a status: %s", job.id, exc)
            status.unavailable = True
            return
        if not shown:
            status.no_draft = True
            return
        status.draft, status.draft_at = text, asyncio.get_running_loop().time()
        self._throttle.took(place.key)
        lasts = self.limits.draft_lasts_s
        if status.refresher is None and lasts is not None:
            status.refresher = self._in_background(self._keep_draft(job, place, status, lasts))

    async def _keep_draft(self, job: Job, place: Place, status: _Status, lasts_s: float) -> None:
        """Show the draft again before it fades, while nothing new came (a long wait in the queue)."""
        loop = asyncio.get_running_loop()
        every = lasts_s * 2 / 3
        while True:
            # A rate to keep, not a synchronisation: the draft would fade after lasts_s.
            await asyncio.sleep(max(0.0, status.draft_at + every - loop.time()))
            async with status.lock:
                if status.done or self.stopped or not self._drafts(place, status) or status.draft is None:
                    return
                if loop.time() - status.draft_at < every:
                    continue  # a fresher draft went out meanwhile
                if not self._throttle.ready(place.key):  # another job of this chat just took the turn
                    status.draft_at = loop.time() - every + self.limits.edit_interval_s
                    continue
                try:
                    await self._draft(job, place, status, status.draft)
                except Exception as exc:  # a status is best effort: the job goes on
                    log.info("job=%s: the draft could not be shown again: %s", job.id, exc)
                    status.draft_at = loop.time()

    async def _post(self, job: Job, place: Place, status: _Status, text: str) -> None:
        await self._note(job.id, STATUS_NOTE, POSTING)
        try:
            status.message_id = await self.sender.post_status(job, text)
        except Undeliverable as exc:
            log.info("job=%s goes on without a status message: %s", job.id, exc)
            status.unavailable = True
            return
        self._throttle.took(place.key)
        await self._note(job.id, STATUS_NOTE, status.message_id)

    async def _replace(self, job: Job, place: Place, status_id: str, part: P) -> bool:
        await self._throttle.window(place.key)
        self._throttle.took(place.key)
        return await self.sender.replace_status(job, status_id, part)

    def _forget_oldest(self) -> None:
        finished = [job_id for job_id, status in self._status.items() if status.done]
        for job_id in finished[:max(0, len(finished) - FINISHED_KEPT)]:
            del self._status[job_id]

    async def _typing(self, job: Job, status: _Status) -> None:
        every = self.limits.typing_every_s
        now = asyncio.get_running_loop().time()
        if every is None or status.done or now - status.last_typing < every:
            return
        status.last_typing = now
        await self.sender.typing(job)


LIVE_SEPARATOR = "\n\n"
ELLIPSIS = "…"


def _status_text(job: Job, update: ProgressUpdate, limits: Limits) -> str:
    sentence = localize(sentences.progress(update.stage, position=update.position, fraction=update.fraction,
                                           eta_s=update.eta_s, detail=update.detail, file_name=job.request.file_name),
                        job.request.replies)
    text = (update.text or "").strip()
    if not text or update.detail:  # a sentence about a problem is shown alone
        return sentence
    return sentence + LIVE_SEPARATOR + fit_tail(text, limits.message_units - limits.measure(
        sentence + LIVE_SEPARATOR), limits.measure)


def fit_tail(text: str, budget: int, measure: Callable[[str], int] = len) -> str:
    """`text` when it measures at most `budget`, else its last words after an ellipsis, within `budget`
    ("" when even the ellipsis does not fit)."""
    if measure(text) <= budget:
        return text
    room = budget - measure(ELLIPSIS)
    if room <= 0:
        return ""
    # Walk back from the end a character at a time: linear in the room, whatever the text's length.
    start, used = len(text), 0
    while start > 0 and used + measure(text[start - 1]) <= room:
        start -= 1
        used += measure(text[start])
    tail = text[start:]
    if start > 0 and not text[start - 1].isspace():
        cut = tail.find(" ")  # a word cut in half: begin at the next one, unless the tail is one word
        if 0 <= cut < len(tail) - 1:
            tail = tail[cut + 1:]
    return ELLIPSIS + tail.lstrip()


class LiveProgress:
    """One journaled job's progress to its Delivery, with the text decoded so far: the runner's progress
    reports and each decoded segment both become a ProgressUpdate carrying it (the courier's Throttle decides
    which are shown). A note in a batch reports no segments: its status stays the sentence alone."""

    def __init__(self, job: Job, delivery: Delivery, spawn: Callable[[Awaitable[None]], None]) -> None:
        """`spawn`: run a progress report in the background (best effort, failures logged)."""
        self._job = job
        self._delivery = delivery
        self._spawn = spawn
        self._text = ""
        self._latest = ProgressUpdate("transcribing")

    def progress(self, update: ProgressUpdate) -> Awaitable[None]:
        if update.stage == "transcribing":
            self._latest = update
            if self._text:
                update = dataclasses.replace(update, text=self._text)
        return self._delivery.progress(self._job, update)

    def segment(self, done: SegmentDone) -> None:
        piece = done.segment.text.strip()
        if not piece:
            return
        self._text = f"{self._text} {piece}" if self._text else piece
        latest = self._latest
        self._spawn(self._delivery.progress(self._job, dataclasses.replace(
            latest, fraction=max(latest.fraction, done.fraction), text=self._text)))
