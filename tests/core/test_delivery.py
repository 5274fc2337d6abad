"""The one delivery mechanism (core/delivery), driven through a platform of its own: a sender that keeps the
messages of each conversation in memory as a chat would show them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from chatscribe.core import sentences
from chatscribe.core.delivery import Courier, Limits, Place, Throttle, Undeliverable
from chatscribe.core.delivery.courier import _status_text, fit_tail
from chatscribe.core.errors import ChatscribeError
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.media import Fetch, MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.text import utf16_units
from chatscribe.core.transcript import Transcript
from tests.waiting import until


@dataclass
class Chat:
    """What a person sees: messages by id, in order, and how many times each was edited."""

    messages: dict[str, str] = field(default_factory=dict)
    edits: dict[str, int] = field(default_factory=dict)


class MemorySender:
    limits = Limits(message_units=100, edit_interval_s=3600.0)

    def __init__(self, *, editable: bool = True, may_post_status: bool = True) -> None:
        self.chats: dict[str, Chat] = {}
        self.editable = editable
        self.may_post_status = may_post_status

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        raise AssertionError("not fetched")

    def place(self, job: Job) -> Place:
        return Place(job.request.chat_id, can_edit=self.editable)

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> Sequence[str]:
        assert isinstance(outcome, ChatscribeError)
        return outcome.user_message.split(" | ")

    async def send(self, job: Job, part: str) -> None:
        self._post(job, part)

    async def post_status(self, job: Job, text: str) -> str:
        if not self.may_post_status:
            raise Undeliverable("may not post in this thread")
        return self._post(job, text)

    async def edit_status(self, job: Job, status_id: str, text: str) -> None:
        chat = self.chats[job.request.chat_id]
        chat.messages[status_id] = text
        chat.edits[status_id] = chat.edits.get(status_id, 0) + 1

    async def replace_status(self, job: Job, status_id: str, part: str) -> bool:
        await self.edit_status(job, status_id, part)
        return True

    async def already_sent(self, job: Job, part: str) -> bool:
        return False

    async def typing(self, job: Job) -> None:
        return None

    async def find_status(self, job: Job) -> str | None:
        chat = self.chats.get(job.request.chat_id, Chat())
        starts = sentences.progress_starts(job.request.file_name, job.request.replies)
        return next((i for i, text in chat.messages.items() if text.startswith(starts)), None)

    def _post(self, job: Job, text: str) -> str:
        chat = self.chats.setdefault(job.request.chat_id, Chat())
        message_id = str(len(chat.messages) + 1)
        chat.messages[message_id] = text
        return message_id

    def seen(self, chat_id: str) -> list[str]:
        return list(self.chats[chat_id].messages.values())


class Receipt:
    def __init__(self, parts_sent: int = 0) -> None:
        self.parts_sent = parts_sent
        self.uncertain = False

    async def sending(self) -> None:
        pass

    async def part_sent(self) -> None:
        self.parts_sent += 1


def _job(job_id: str = "j1", chat_id: str = "c1", notes: Mapping[str, str] | None = None,
         parts_sent: int = 0) -> Job:
    async def never(max_bytes: int) -> bytes:
        raise AssertionError("not fetched")

    request = MediaRequest(platform="memory", chat_id=chat_id, user_id="u", fetch=never, file_name=None)
    return Job(id=job_id, request=request, options=TranscribeOptions(), parts_sent=parts_sent,
               notes=notes or {})


def _courier(sender: MemorySender, noted: dict[tuple[str, str], str] | None = None,
             status_after_s: float = 0.0) -> Courier[str]:
    async def note(job_id: str, key: str, value: str) -> None:
        if noted is not None:
            noted[(job_id, key)] = value

    return Courier(sender, note=note, status_after_s=status_after_s)


async def test_the_status_message_becomes_the_first_part_and_its_id_is_kept_for_a_restart() -> None:
    sender, noted = MemorySender(), {}
    courier = _courier(sender, noted)
    job = _job()
    await courier.progress(job, ProgressUpdate("queued", position=2))
    assert sender.seen("c1") == ["Waiting to transcribe (position 2 in the queue)…"]
    await courier.deliver(job, ChatscribeError("Part one | part two"), Receipt())
    assert sender.seen("c1") == ["Part one", "part two"]
    assert noted == {("j1", "status"): "1"}


async def test_after_a_restart_the_noted_status_is_edited_and_accepted_parts_are_skipped() -> None:
    sender = MemorySender()
    courier = _courier(sender)
    sender._post(_job(), "Transcribing… 40%")  # left by the process that died, with part 1 not yet in it
    await courier.deliver(_job(notes={"status": "1"}), ChatscribeError("Part one | part two"), Receipt())
    assert sender.seen("c1") == ["Part one", "part two"]

    resent = MemorySender()
    resent._post(_job(), "Part one")
    await _courier(resent).deliver(_job(notes={"status": "1"}), ChatscribeError("Part one | part two"),
                                   Receipt(parts_sent=1))
    assert resent.seen("c1") == ["Part one", "part two"], "part one, accepted before the restart, is not sent again"


async def test_a_status_whose_id_was_never_noted_is_found_again_after_a_restart() -> None:
    """The process died between posting the status and noting its id: the note says "posting"."""
    sender, noted = MemorySender(), {}
    sender._post(_job(), "Transcribing… 40%")
    await _courier(sender, noted).deliver(_job(notes={"status": "posting"}), ChatscribeError("The answer"),
                                          Receipt())
    assert sender.seen("c1") == ["The answer"], "no stale status left behind"
    assert noted == {("j1", "status"): "1"}


async def test_a_retried_delivery_still_turns_the_status_into_the_answer() -> None:
    class FlakyOnce(MemorySender):
        failed = False

        async def replace_status(self, job: Job, status_id: str, part: str) -> bool:
            if not self.failed:
                self.failed = True
                raise ConnectionError("the platform did not answer")
            return await super().replace_status(job, status_id, part)

    sender = FlakyOnce()
    courier = _courier(sender)
    job, receipt = _job(), Receipt()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.3))
    with pytest.raises(ConnectionError):  # the service tries again after its back-off
        await courier.deliver(job, ChatscribeError("The answer"), receipt)
    await courier.deliver(job, ChatscribeError("The answer"), receipt)
    assert sender.seen("c1") == ["The answer"]


async def test_a_place_that_cannot_be_edited_gets_no_status_only_the_answer() -> None:
    for sender in (MemorySender(editable=False), MemorySender(may_post_status=False)):
        courier = _courier(sender)
        job = _job()
        await courier.progress(job, ProgressUpdate("transcribing", fraction=0.5))
        await courier.progress(job, ProgressUpdate("transcribing", fraction=0.7))
        await courier.deliver(job, ChatscribeError("The answer"), Receipt())
        assert sender.seen("c1") == ["The answer"]


async def test_a_late_progress_report_posts_nothing_after_the_answer() -> None:
    sender = MemorySender()
    courier = _courier(sender)
    job = _job()
    await courier.deliver(job, ChatscribeError("The answer"), Receipt())
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.9))
    assert sender.seen("c1") == ["The answer"]


async def test_no_status_for_an_answer_expected_soon() -> None:
    sender = MemorySender()
    courier = _courier(sender, status_after_s=15)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.1, eta_s=4))
    assert sender.chats == {}
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.1, eta_s=40))
    assert sender.seen("c1") == ["Transcribing… 10%, about 40 s left"]


def test_throttle_keeps_the_interval_and_the_window_per_place() -> None:
    now = [0.0]
    throttle = Throttle(Limits(message_units=2000, edit_interval_s=2.0, edits_per_window=5, window_s=5.0),
                        clock=lambda: now[0])
    throttle.took("a")
    assert not throttle.ready("a")
    assert throttle.ready("b"), "counted per place"
    now[0] = 2.0
    assert throttle.ready("a")
    for _ in range(4):  # five edits in one second (final answers do not wait for the interval)
        throttle.took("a")
    now[0] = 4.5
    assert not throttle.ready("a"), "five edits in the last 5 s"
    now[0] = 7.1
    assert throttle.ready("a")


def test_the_progress_sentence_says_the_queue_position_the_share_done_and_the_eta() -> None:
    assert sentences.progress("transcribing", fraction=0.4) == "Transcribing… 40%"
    assert sentences.progress("queued", position=2, eta_s=120) == \
        "Waiting to transcribe (position 2 in the queue), about 2 min left…"
    assert sentences.progress("transcribing", fraction=0.5, eta_s=21, file_name="talk.m4a") == \
        "Transcribing talk.m4a… 50%, about 20 s left"
    assert sentences.progress("queued", position=3, detail="Answers are delayed right now.") == \
        "Answers are delayed right now."


async def test_the_status_shows_the_text_so_far_and_only_its_last_words_when_it_outgrows_a_message() -> None:
    sender = MemorySender()  # 100 units a message
    courier = _courier(sender)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.2, eta_s=60, text="Ask not what"))
    (status,) = sender.chats["c1"].messages.values()
    assert status == "Transcribing… 20%, about 60 s left\n\nAsk not what"

    words = " ".join(f"word{i}" for i in range(60))  # far more than fits
    fitted = _status_text(job, ProgressUpdate("transcribing", fraction=0.7, text=words), sender.limits)
    sentence, tail = fitted.split("\n\n")
    assert sentence == "Transcribing… 70%"
    assert 90 <= len(fitted) <= 100, "the message is filled, never overfilled"
    assert tail.startswith("…")
    assert words.endswith(tail.removeprefix("…")), "the last words, in order"
    assert tail.removeprefix("…").split()[0] in words.split(), "no word cut in half"


def test_the_tail_is_measured_in_the_platforms_units() -> None:
    text = "начало " + "😀 " * 40 + "end"  # an emoji is two UTF-16 units
    tail = fit_tail(text, 30, utf16_units)
    assert utf16_units(tail) <= 30
    assert tail.startswith("…")
    assert tail.endswith("😀 end")
    assert fit_tail("short", 30, utf16_units) == "short"
    assert fit_tail("onewordlongerthanthebudget", 10) == "…" + "onewordlongerthanthebudget"[-9:]


class DraftSender(MemorySender):
    """A platform with drafts (an ephemeral live preview) besides its messages."""

    limits = Limits(message_units=100, edit_interval_s=0.05, draft_lasts_s=0.3)

    def __init__(self, *, drafts: bool = True) -> None:
        super().__init__()
        self.drafts_allowed = drafts
        self.drafts: list[tuple[str, str]] = []

    async def preview(self, job: Job, text: str) -> bool:
        if not self.drafts_allowed:
            return False
        self.drafts.append((job.id, text))
        return True


async def test_a_draft_shows_the_status_and_the_answer_comes_as_new_messages() -> None:
    sender, noted = DraftSender(), {}
    courier = _courier(sender, noted)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.5, text="Ask not"))
    assert sender.drafts == [("j1", "Transcribing… 50%\n\nAsk not")]
    assert sender.chats == {}, "no status message"
    await courier.deliver(job, ChatscribeError("Part one | part two"), Receipt())
    assert sender.seen("c1") == ["Part one", "part two"]
    assert ("j1", "status") not in noted, "nothing to find again after a restart"


async def test_a_draft_is_shown_again_before_it_fades_until_the_answer() -> None:
    sender = DraftSender()
    courier = _courier(sender)
    job = _job()
    await courier.progress(job, ProgressUpdate("queued", position=3))
    await until(lambda: len(sender.drafts) >= 3, "the draft shown again while the job waits", timeout=10)
    assert {text for _, text in sender.drafts} == {"Waiting to transcribe (position 3 in the queue)…"}
    await courier.deliver(job, ChatscribeError("Done"), Receipt())
    shown = len(sender.drafts)
    await courier.progress(job, ProgressUpdate("queued", position=3))
    assert len(sender.drafts) == shown, "no draft after the answer"
    assert sender.seen("c1") == ["Done"]


async def test_where_no_draft_can_be_shown_the_status_is_a_message() -> None:
    sender = DraftSender(drafts=False)
    courier = _courier(sender)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.5, text="Ask not"))
    assert sender.seen("c1") == ["Transcribing… 50%\n\nAsk not"]
    await courier.deliver(job, ChatscribeError("Done"), Receipt())
    assert sender.seen("c1") == ["Done"], "the status message became the answer"


class BlockedDraftSender(DraftSender):
    """The platform refuses the draft for good (the bot was blocked in that chat)."""

    async def preview(self, job: Job, text: str) -> bool:
        self.drafts.append((job.id, text))
        raise Undeliverable("blocked")


async def test_a_draft_refused_for_good_leaves_the_job_without_a_status_and_the_answer_is_still_sent() -> None:
    sender = BlockedDraftSender()
    courier = _courier(sender)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.2, text="Ask not"))
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.9, text="Ask not what"))
    assert len(sender.drafts) == 1, "not asked again"
    assert sender.chats == {}, "no status message either"
    await courier.deliver(job, ChatscribeError("Done"), Receipt())
    assert sender.seen("c1") == ["Done"]


class QuickSender(MemorySender):
    limits = Limits(message_units=100, edit_interval_s=0.2)


async def test_words_held_back_by_the_rate_are_shown_as_soon_as_it_allows() -> None:
    sender = QuickSender()
    courier = _courier(sender)
    job = _job()
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.2, text="Ask not"))
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.4, text="Ask not what your country"))
    assert sender.seen("c1") == ["Transcribing… 20%\n\nAsk not"], "within the interval: not yet"
    await until(lambda: sender.seen("c1") == ["Transcribing… 40%\n\nAsk not what your country"],
                "the held-back words shown once the interval passed", timeout=10)
    assert sender.chats["c1"].edits == {"1": 1}, "one edit, not one per report"
    await courier.progress(job, ProgressUpdate("transcribing", fraction=0.5, text="Ask not what your country"))
    await courier.deliver(job, ChatscribeError("Done"), Receipt())
    assert sender.seen("c1") == ["Done"]
