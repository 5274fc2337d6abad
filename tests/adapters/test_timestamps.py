"""`timestamps on` shows the start of each passage as [mm:ss] in the answer on every platform; off, none."""

from __future__ import annotations

import re

import pytest

from chatscribe.adapters import discord, slack, telegram
from chatscribe.core.settings import ConversationSettings
from chatscribe.core.transcript import Segment, Transcript

MARK = re.compile(r"\[(?:\d+:)?\d{2}:\d{2}\]")
LONG = [f"Passage number {i} is about the tide, the harbour and the boats." for i in range(200)]


def _transcript(*texts: str) -> Transcript:
    segments = tuple(Segment(start=i * 65.0, end=i * 65.0 + 60, text=f" {t}") for i, t in enumerate(texts))
    return Transcript(segments=segments, language="en", language_probability=1.0,
                      duration_s=len(texts) * 65.0, model="tiny.en")


def _visible(platform: str, transcript: Transcript, *, timestamps: bool, max_parts: int = 3) -> list[str]:
    """What a reader sees in the messages and in an attached .txt file, in order."""
    if platform == "telegram":
        parts = telegram.render_transcript(transcript, ConversationSettings(timestamps=timestamps),
                                           max_parts=max_parts)
        return [p.text if isinstance(p, telegram.OutgoingText) else p.data.decode() for p in parts]
    if platform == "discord":
        replies = discord.render_answer(transcript, max_parts=max_parts, timestamps=timestamps)
        return [text for r in replies for text in (r.content, r.file.data.decode() if r.file else "")]
    answer = slack.render_transcript(transcript, file_name="standup.m4a", max_parts=max_parts,
                                     timestamps=timestamps)
    return [slack.unescape("\n".join(p.sections)) if isinstance(p, slack.SlackMessage) else p.content
            for p in answer]


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_timestamps_on_marks_the_start_of_each_passage(platform: str) -> None:
    seen = "\n".join(_visible(platform, _transcript("Good morning.", "Next item."), timestamps=True))
    assert "[00:00] Good morning." in seen
    assert "[01:05] Next item." in seen


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_timestamps_off_shows_no_marks(platform: str) -> None:
    seen = "\n".join(_visible(platform, _transcript("Good morning.", "Next item."), timestamps=False))
    assert "Good morning." in seen
    assert "Next item." in seen
    assert not MARK.search(seen)


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_a_long_answer_sent_as_a_file_keeps_the_marks_in_its_text(platform: str) -> None:
    on = _visible(platform, _transcript(*LONG), timestamps=True, max_parts=1)
    off = _visible(platform, _transcript(*LONG), timestamps=False, max_parts=1)
    file_on = max(on, key=len)  # the attached .txt file: the whole transcript
    assert "[00:00] Passage number 0 " in file_on
    assert "[3:35:35] Passage number 199 " in file_on, "199 × 65 s: past an hour the mark shows the hours"
    assert len(re.findall(r"^\[[\d:]+\] Passage number \d+ ", file_on, re.MULTILINE)) == len(LONG)
    assert not MARK.search("\n".join(off))
