"""A burst of short voice notes from many Slack channels while `chatscribe run slack` is SIGKILLed.

Used by tests/e2e/test_kill_burst.py (a small burst) and bench/bench_kill_burst.py (200 notes, 20 chats).
The kills are triggered by progress seen from outside (how many answers reached the fake Slack), never
by a timer, so each lands while notes are waiting, transcribing and being delivered. Each note's thread
is then read back: it must hold exactly one answer (its transcript, or the set-aside sentence for a note
that was being worked on at every kill), and nothing innocent may be set aside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.audio_tools import variants
from tests.e2e.conftest import SlackProcess
from tests.fakes.slack_api import text_of

OPENING = "And so my fellow Americans"
"""The first seconds of jfk.flac: what every note says."""
SET_ASIDE = "set it aside"


@dataclass(frozen=True, slots=True)
class BurstResult:
    notes: int
    chats: int
    kills: tuple[int, ...]
    """Answers the fake Slack had received when each SIGKILL was sent."""
    answers: dict[tuple[str, str], list[str]]
    """(channel, message ts) -> the bot's messages left in that note's thread (a status, then the answer,
    is one message edited)."""
    seconds: float
    restarts_s: tuple[float, ...]
    """Seconds from each SIGKILL until the restarted process was ready."""
    in_hand_at_kills: tuple[frozenset[str], ...]
    """The jobs whose media the process was reading or transcribing when each SIGKILL landed."""
    crashes: dict[str, int]
    """job id -> deaths the journal counted against it."""

    @property
    def unanswered(self) -> list[tuple[str, str]]:
        return [key for key, texts in self.answers.items() if not texts]

    @property
    def duplicated(self) -> list[tuple[str, str]]:
        return [key for key, texts in self.answers.items() if len(texts) > 1]

    @property
    def set_aside(self) -> list[tuple[str, str]]:
        return [key for key, texts in self.answers.items() if any(SET_ASIDE in t for t in texts)]

    @property
    def misattributed(self) -> dict[str, tuple[int, int]]:
        """job id -> (crashes counted, kills its media was in hand at), where the two differ."""
        counted = {job: (crashes, sum(job in in_hand for in_hand in self.in_hand_at_kills))
                   for job, crashes in self.crashes.items()}
        return {job: pair for job, pair in counted.items() if pair[0] != pair[1]}

    @property
    def wrong(self) -> list[tuple[str, str]]:
        """Answered with something that is neither the transcript nor the set-aside sentence."""
        return [key for key, texts in self.answers.items()
                if len(texts) == 1 and SET_ASIDE not in texts[0] and not transcribes_opening(texts[0])]


def transcribes_opening(text: str) -> bool:
    """tiny.en hears "And so my fellow Americans" in several ways ("And so am I fellow Americans"); an error
    sentence or another note's words share none of its last two."""
    return "fellow americans" in " ".join(text.lower().replace(",", " ").replace(".", " ").split())


def answered(chatscribe: SlackProcess) -> int:
    """Notes whose thread shows a transcript now (a status message edited into the answer counts)."""
    return sum(1 for messages in chatscribe.fake.history.values() for m in messages
               if m.get("bot_id") == chatscribe.fake.bot_id and m.get("thread_ts") and transcribes_opening(text_of(m)))


async def run(chatscribe: SlackProcess, audio: Callable[[str], bytes], *, notes: int, chats: int,
              kill_after: tuple[float, ...] = (0.2, 0.55), seconds: float = 3.0, status_after_s: float = 15
              ) -> BurstResult:
    """Share `notes` notes from `chats` channels in two waves, SIGKILL once the fake has received each
    share in `kill_after` of all answers, restart on the same data dir each time, wait for every answer."""
    started = time.monotonic()
    clips = variants(audio("jfk.flac"), notes, seconds=seconds)  # same words, different bytes: no cache hits
    channels = [f"C0CHAT{n:02d}" for n in range(chats)]
    shared: list[tuple[str, dict[str, Any]]] = []
    # 15 s is the default: notes that wait show a status message, which later becomes the answer
    await chatscribe.start(SLACK_STATUS_AFTER_S=str(status_after_s))

    async def share(indices: range) -> None:
        for i in indices:
            channel = channels[i % chats]
            # one person per channel: the per-person rate limit is not what this measures
            shared.append((channel, await chatscribe.share(f"note{i}.wav", clips[i], mimetype="audio/wav",
                                                           channel=channel, user=f"U{channel}")))
        await chatscribe.until(lambda: len(chatscribe.journal()) >= len(shared), "every shared note to be journaled")

    first_wave = range(notes // 2)
    await share(first_wave)
    kills: list[int] = []
    in_hand: list[frozenset[str]] = []
    restarts: list[float] = []
    for number, share_of_answers in enumerate(kill_after):
        goal = max(1, int(notes * share_of_answers))
        await chatscribe.until(lambda: answered(chatscribe) >= goal,  # noqa: B023
                               f"{goal} answers before kill {number + 1}")
        kills.append(answered(chatscribe))
        killed = time.monotonic()
        await chatscribe.kill()
        in_hand.append(frozenset(chatscribe.media_in_hand()))  # read from a dead process's journal: exact
        await chatscribe.start()
        restarts.append(time.monotonic() - killed)
        if number == 0:  # the second wave arrives while the first is being resumed
            await share(range(len(first_wave), notes))
    await chatscribe.until(lambda: set(chatscribe.journal().values()) == {"delivered"}
                           and len(chatscribe.journal()) == notes, "every note to be answered", timeout=600)
    # What a person sees in each note's thread at the end: every bot message left there.
    answers = {(channel, message["ts"]): [text_of(m) for m in chatscribe.fake.bot_messages(channel, message["ts"])]
               for channel, message in shared}
    return BurstResult(notes, chats, tuple(kills), answers, time.monotonic() - started, tuple(restarts),
                       tuple(in_hand), chatscribe.crashes())

