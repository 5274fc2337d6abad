"""Doubtful (low-confidence) passages are shown the same way on every platform: a short marker on the answer
and, in txt/srt/vtt files, [?] before each doubtful passage, so a reader knows what to check."""

from __future__ import annotations

import pytest

from chatscribe.adapters import discord, slack, telegram
from chatscribe.core import sentences
from chatscribe.core.settings import ConversationSettings
from chatscribe.core.transcript import LOW_CONFIDENCE, Segment, Transcript, render

CLEAR = "We meet on Tuesday at ten."
MUMBLED = "Bring the quarterly figures."


def _transcript(*, doubtful: bool = True) -> Transcript:
    flags = frozenset({LOW_CONFIDENCE}) if doubtful else frozenset()
    return Transcript(segments=(Segment(0.0, 2.0, f" {CLEAR}"), Segment(2.0, 4.0, f" {MUMBLED}", flags=flags)),
                      language="en", language_probability=1.0, duration_s=4.0, model="tiny.en")


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt"])
def test_files_mark_only_the_doubtful_passages(fmt: str) -> None:
    body = render(_transcript(), fmt, marked=True)
    assert f"{sentences.DOUBTFUL_MARK} {MUMBLED}" in body
    assert f"{sentences.DOUBTFUL_MARK} {CLEAR}" not in body
    assert CLEAR in body
    assert sentences.DOUBTFUL_MARK not in render(_transcript(doubtful=False), fmt, marked=True)
    assert sentences.DOUBTFUL_MARK not in render(_transcript(), fmt), "the HTTP API's files stay as OpenAI's"


def test_telegram_answer_carries_the_marker() -> None:
    (part,) = telegram.render_transcript(_transcript(), ConversationSettings(), max_parts=3)
    assert isinstance(part, telegram.OutgoingText)
    assert part.text.startswith(f"{CLEAR} {MUMBLED}")
    assert part.text.endswith(sentences.DOUBTFUL)
    (plain,) = telegram.render_transcript(_transcript(doubtful=False), ConversationSettings(), max_parts=3)
    assert isinstance(plain, telegram.OutgoingText)
    assert sentences.DOUBTFUL not in plain.text


def test_telegram_file_marks_the_passage_and_its_preview_the_answer() -> None:
    preview, document = telegram.render_transcript(_transcript(), ConversationSettings(format="srt"), max_parts=3)
    assert isinstance(preview, telegram.OutgoingText)
    assert isinstance(document, telegram.OutgoingDocument)
    assert preview.text.endswith(sentences.DOUBTFUL)
    assert f"{sentences.DOUBTFUL_MARK} {MUMBLED}" in document.data.decode()


def test_discord_answer_carries_the_marker() -> None:
    (reply,) = discord.render_answer(_transcript(), max_parts=3)
    assert sentences.DOUBTFUL in reply.content.replace("\\", "")
    (plain,) = discord.render_answer(_transcript(doubtful=False), max_parts=3)
    assert sentences.DOUBTFUL not in plain.content.replace("\\", "")


def test_discord_file_marks_the_passage() -> None:
    long = Transcript(segments=tuple(Segment(i, i + 1.0, f" {CLEAR} " * 40) for i in range(10))
                      + (Segment(10.0, 11.0, f" {MUMBLED}", flags=frozenset({LOW_CONFIDENCE})),),
                      language="en", language_probability=1.0, duration_s=11.0, model="tiny.en")
    (reply,) = discord.render_answer(long, max_parts=1, file_format="vtt")
    assert reply.file is not None
    assert f"{sentences.DOUBTFUL_MARK} {MUMBLED}" in reply.file.data.decode()


def test_slack_answer_carries_the_marker_and_its_upload_the_marks() -> None:
    (message,) = slack.render_transcript(_transcript(), file_name="standup.m4a", max_parts=3)
    assert isinstance(message, slack.SlackMessage)
    assert slack.escape(sentences.DOUBTFUL) in message.context
    preview, upload = slack.render_transcript(_transcript(), file_name="standup.m4a", max_parts=0,
                                              upload_format="txt")
    assert isinstance(upload, slack.SlackUpload)
    assert f"{sentences.DOUBTFUL_MARK} {MUMBLED}" in upload.content
    (plain,) = slack.render_transcript(_transcript(doubtful=False), file_name="standup.m4a", max_parts=3)
    assert isinstance(plain, slack.SlackMessage)
    assert slack.escape(sentences.DOUBTFUL) not in plain.context
