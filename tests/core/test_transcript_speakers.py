"""Who said what, as people read it: turns labelled in txt, voices in VTT, labels in SRT and JSON, and a
transcript with one speaker (or none told apart) rendered exactly as before speaker labels existed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chatscribe.core import transcript
from chatscribe.core.transcript import FORMATS, LOW_CONFIDENCE, Segment, Transcript, render

TWO_VOICES = Transcript(
    segments=(
        Segment(0.0, 2.5, " Did you get the file?", speaker="A"),
        Segment(2.5, 4.0, " The one from <Monday>?", speaker="A"),
        Segment(4.0, 6.0, " Yes, I read it.", speaker="B", flags=frozenset({LOW_CONFIDENCE})),
        Segment(6.0, 6.5, "  "),  # nothing said: no turn, no cue
        Segment(66.0, 69.0, " Good.", speaker="A"),
    ),
    language="en",
    language_probability=0.99,
    duration_s=70.0,
    model="tiny.en",
    speakers=("A", "B"),
)


def test_txt_starts_each_turn_with_its_speaker() -> None:
    assert render(TWO_VOICES, "txt") == (
        "Speaker A: Did you get the file? The one from <Monday>?\n\n"
        "Speaker B: Yes, I read it.\n\n"
        "Speaker A: Good."
    )


def test_txt_with_timestamps_marks_each_passage_and_labels_the_first_of_a_turn() -> None:
    assert render(TWO_VOICES, "txt", timestamps=True, marked=True).split("\n") == [
        "[00:00] Speaker A: Did you get the file?",
        "[00:02] The one from <Monday>?",
        "",
        "[00:04] Speaker B: [?] Yes, I read it.",
        "",
        "[01:06] Speaker A: Good.",
    ]


def test_channels_and_known_speakers_are_shown_by_their_own_names() -> None:
    call = dataclasses.replace(TWO_VOICES, speakers=("Left", "Right"), segments=(
        Segment(0.0, 2.0, " Hello?", speaker="Left"), Segment(2.0, 3.0, " Hi, it's me.", speaker="Right")))

    assert render(call, "txt") == "Left: Hello?\n\nRight: Hi, it's me."
    assert [transcript.speaker_name(label) for label in ("A", "B", "Right", "Channel 3", "customer")] == [
        "Speaker A", "Speaker B", "Right", "Channel 3", "customer"]


def test_srt_prefixes_every_cue_with_its_speaker() -> None:
    cues = [block.split("\n")[2] for block in render(TWO_VOICES, "srt").strip().split("\n\n")]

    assert cues == ["[Speaker A] Did you get the file?", "[Speaker A] The one from <Monday>?",
                    "[Speaker B] Yes, I read it.", "[Speaker A] Good."]


def test_vtt_cues_carry_the_voice_tag() -> None:
    vtt = render(TWO_VOICES, "vtt")

    assert vtt.startswith("WEBVTT\n")
    assert [line for line in vtt.split("\n") if line.startswith("<v ")] == [
        "<v Speaker A>Did you get the file?", "<v Speaker A>The one from &lt;Monday&gt;?",
        "<v Speaker B>Yes, I read it.", "<v Speaker A>Good."]


def test_vtt_escapes_a_known_speakers_name_in_its_voice_tag() -> None:
    named = dataclasses.replace(TWO_VOICES, speakers=("Ann <CEO>", "B"), segments=(
        Segment(0.0, 2.0, " Welcome.", speaker="Ann <CEO>"), Segment(2.0, 3.0, " Thanks.", speaker="B")))

    assert "<v Ann &lt;CEO&gt;>Welcome." in render(named, "vtt")


def test_json_segments_carry_their_speaker_label() -> None:
    data = json.loads(render(TWO_VOICES, "json"))

    assert data["speakers"] == ["A", "B"]
    spoken = [s for s in data["segments"] if s["text"]]
    assert [(s["text"], s["speaker"]) for s in spoken] == [
        ("Did you get the file?", "A"), ("The one from <Monday>?", "A"), ("Yes, I read it.", "B"), ("Good.", "A")]


def test_a_segment_the_speaker_step_left_unlabelled_stays_in_the_turn_before_it() -> None:
    gap = dataclasses.replace(TWO_VOICES, segments=(
        Segment(0.0, 1.0, " One,", speaker="A"), Segment(1.0, 2.0, " two."), Segment(2.0, 3.0, " Three.", speaker="B")))

    assert render(gap, "txt") == "Speaker A: One, two.\n\nSpeaker B: Three."
    assert "[Speaker A] two." in render(gap, "srt")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("timestamps", [False, True])
def test_one_speaker_renders_exactly_as_a_transcript_without_speakers(fmt: str, timestamps: bool) -> None:
    plain = dataclasses.replace(TWO_VOICES, speakers=(), segments=tuple(
        dataclasses.replace(s, speaker=None) for s in TWO_VOICES.segments))
    one = dataclasses.replace(TWO_VOICES, speakers=("A",), segments=tuple(
        dataclasses.replace(s, speaker="A") for s in TWO_VOICES.segments))

    for marked in (False, True):
        assert render(one, fmt, timestamps=timestamps, marked=marked) == render(
            plain, fmt, timestamps=timestamps, marked=marked)
    assert "Speaker" not in render(one, fmt, timestamps=timestamps)
    assert render(plain, "txt") == "Did you get the file? The one from <Monday>? Yes, I read it. Good."


def test_json_says_why_a_transcript_has_no_speaker_labels() -> None:
    note = "Speakers could not be told apart in this recording."
    failed = dataclasses.replace(TWO_VOICES, speakers=(), speaker_note=note)

    data = json.loads(render(failed, "json"))

    assert data["speaker_note"] == note
    assert "speakers" not in data
    assert all("speaker" not in s for s in data["segments"])
