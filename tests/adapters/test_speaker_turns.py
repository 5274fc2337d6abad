"""Who said what in a chat answer: each turn starts with its speaker, in the platform's own markup (plain on
Telegram, bold on Discord and Slack); a transcript with one speaker reads exactly as it always did; the
sentence saying speakers could not be told apart comes with the answer."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chatscribe.adapters import discord, slack, telegram
from chatscribe.core import sentences
from chatscribe.core.codecs import dumps_outcome, loads_transcript
from chatscribe.core.settings import ConversationSettings
from chatscribe.core.transcript import Segment, Transcript

CALL = Transcript(
    segments=(
        Segment(0.0, 2.0, " Did you see *the* file?", speaker="A"),
        Segment(2.0, 3.0, " It's <urgent>.", speaker="A"),
        Segment(3.0, 5.0, " Yes, I did.", speaker="B"),
        Segment(5.0, 7.0, " Thanks.", speaker="A"),
    ),
    language="en", language_probability=1.0, duration_s=7.0, model="tiny.en", speakers=("A", "B"),
)
NOTE = "Speakers could not be told apart in this recording, so the transcript has no speaker labels."
NOTE_DE = ("Die Sprecher ließen sich in dieser Aufnahme nicht unterscheiden, daher hat das Transkript keine "
           "Sprecherkennzeichnung.")  # core/locale/de


def _one_speaker(transcript: Transcript) -> Transcript:
    return dataclasses.replace(transcript, speakers=("A",), segments=tuple(
        dataclasses.replace(s, speaker="A") for s in transcript.segments))


def _unlabelled(transcript: Transcript) -> Transcript:
    return dataclasses.replace(transcript, speakers=(), segments=tuple(
        dataclasses.replace(s, speaker=None) for s in transcript.segments))


def _sent(platform: str, transcript: Transcript, *, max_parts: int = 3, locale: str | None = None) -> list[str]:
    """What each platform sends, as sent (its markup included), messages and attached files in order."""
    if platform == "telegram":
        parts = telegram.render_transcript(transcript, ConversationSettings(), max_parts=max_parts, locale=locale)
        return [p.text if isinstance(p, telegram.OutgoingText) else p.data.decode() for p in parts]
    if platform == "discord":
        replies = discord.render_answer(transcript, max_parts=max_parts, locale=locale)
        return [text for r in replies for text in (r.content, r.file.data.decode() if r.file else "") if text]
    answer = slack.render_transcript(transcript, file_name="call.m4a", max_parts=max_parts, locale=locale)
    return ["\n".join(p.sections) if isinstance(p, slack.SlackMessage) else p.content for p in answer]


def test_telegram_starts_each_turn_with_the_plain_speaker_name() -> None:
    (text,) = _sent("telegram", CALL)

    assert text == ("Speaker A: Did you see *the* file? It's <urgent>.\n\nSpeaker B: Yes, I did.\n\n"
                    "Speaker A: Thanks.")


def test_discord_shows_each_speaker_in_bold_and_escapes_the_words() -> None:
    (content,) = _sent("discord", CALL)

    assert content.split("\n\n") == [
        r"**Speaker A:** Did you see \*the\* file? It's <urgent>.", "**Speaker B:** Yes, I did.",
        "**Speaker A:** Thanks."]


def test_slack_shows_each_speaker_in_bold_and_escapes_the_words() -> None:
    (section, *_) = _sent("slack", CALL)

    assert section.split("\n\n") == [
        "*Speaker A:* Did you see *the* file? It's &lt;urgent&gt;.",
        "*Speaker B:* Yes, I did.", "*Speaker A:* Thanks."]


def test_a_channel_label_is_the_turns_name() -> None:
    stereo = dataclasses.replace(CALL, speakers=("Left", "Right"), segments=(
        Segment(0.0, 2.0, " Hello?", speaker="Left"), Segment(2.0, 3.0, " Hi.", speaker="Right")))

    assert _sent("telegram", stereo) == ["Left: Hello?\n\nRight: Hi."]
    assert _sent("discord", stereo) == ["**Left:** Hello?\n\n**Right:** Hi."]


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_a_long_labelled_answer_sent_as_a_file_keeps_the_turns(platform: str) -> None:
    long_call = dataclasses.replace(CALL, segments=tuple(
        Segment(i * 5.0, i * 5.0 + 5, f" Point {i} about the harbour, the tide and the boats.",
                speaker="AB"[i // 40 % 2])
        for i in range(240)))

    sent = _sent(platform, long_call, max_parts=1)

    whole = max(sent, key=len)  # the attached .txt file: the whole transcript
    assert whole.startswith("Speaker A: Point 0 about")
    assert "\n\nSpeaker B: Point 40 about" in whole
    assert whole.count("Speaker ") == 6


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_one_speaker_is_answered_exactly_as_without_speaker_labels(platform: str) -> None:
    assert _sent(platform, _one_speaker(CALL)) == _sent(platform, _unlabelled(CALL))
    assert not any("Speaker" in part for part in _sent(platform, _one_speaker(CALL)))


@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_the_answer_says_when_speakers_could_not_be_told_apart(platform: str) -> None:
    failed = dataclasses.replace(_unlabelled(CALL), speaker_note=NOTE)

    sent = _sent(platform, failed)

    assert any(NOTE in part.replace("\\", "") for part in sent), sent
    assert "Did you see" in sent[0]


@pytest.mark.parametrize("written", ["now", "before the sentence was kept"])
@pytest.mark.parametrize("platform", ["telegram", "discord", "slack"])
def test_the_note_read_back_from_the_cache_is_said_in_the_readers_language(platform: str, written: str) -> None:
    stored = dumps_outcome(dataclasses.replace(_unlabelled(CALL), speaker_note=sentences.SPEAKERS_NOT_TOLD_APART))
    if written != "now":  # an older row: the note's English text alone
        older = json.loads(stored)
        older["speaker_note"] = str(sentences.SPEAKERS_NOT_TOLD_APART)
        stored = json.dumps(older)

    sent = _sent(platform, loads_transcript(stored), locale="de")

    assert any(NOTE_DE in part.replace("\\", "") for part in sent), sent
    assert not any(NOTE in part.replace("\\", "") for part in sent)
