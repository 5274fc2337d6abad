"""The renderers people download or paste: txt, srt, vtt and json of one constructed transcript."""

from __future__ import annotations

import json
import re

import pytest

from chatscribe.core.transcript import FORMATS, LOW_CONFIDENCE, Segment, Transcript, Word, render

TRANSCRIPT = Transcript(
    segments=(
        Segment(0.0, 3.2, " And so my fellow Americans,", avg_logprob=-0.21, no_speech_prob=0.01,
                compression_ratio=1.31,
                words=(Word(0.0, 0.4, " And", 0.91), Word(0.4, 0.6, " so", 0.88))),
        Segment(3.2, 4.0, "  "),  # nothing said: must not become an empty cue
        Segment(65.25, 3725.0004, " ask not <what> AT&T can do -->", avg_logprob=-1.2,
                flags=frozenset({LOW_CONFIDENCE})),
    ),
    language="en",
    language_probability=0.987654,
    duration_s=3726.5,
    model="tiny.en:int8:beam5:vad1",
    truncated=True,
)


def test_txt_is_the_spoken_text_in_one_line() -> None:
    assert render(TRANSCRIPT, "txt") == "And so my fellow Americans, ask not <what> AT&T can do -->"


def test_txt_with_timestamps_marks_each_segment() -> None:
    assert render(TRANSCRIPT, "txt", timestamps=True).splitlines() == [
        "[00:00] And so my fellow Americans,",
        "[01:05] ask not <what> AT&T can do -->",
    ]


def test_srt_numbers_spoken_segments_with_comma_millis() -> None:
    assert render(TRANSCRIPT, "srt") == (
        "1\n00:00:00,000 --> 00:00:03,200\nAnd so my fellow Americans,\n"
        "\n"
        "2\n00:01:05,250 --> 01:02:05,000\nask not <what> AT&T can do -->\n"
    )


def test_vtt_has_header_dot_millis_and_escaped_cue_text() -> None:
    text = render(TRANSCRIPT, "vtt")
    assert text.startswith("WEBVTT\n\n")
    cues = text.removeprefix("WEBVTT\n\n").split("\n\n")
    assert cues[0] == "00:00:00.000 --> 00:00:03.200\nAnd so my fellow Americans,"
    # "<what>" would be read as a tag and "-->" as a timing line by a player
    assert cues[1] == "00:01:05.250 --> 01:02:05.000\nask not &lt;what&gt; AT&amp;T can do --&gt;\n"


def test_timestamps_are_well_formed_in_srt_and_vtt() -> None:
    stamp = r"\d{2}:[0-5]\d:[0-5]\d[.,]\d{3}"
    for fmt in ("srt", "vtt"):
        timings = [line for line in render(TRANSCRIPT, fmt).splitlines() if "-->" in line and line[0].isdigit()]
        assert len(timings) == 2
        for line in timings:
            assert re.fullmatch(f"{stamp} --> {stamp}", line), line


def test_json_carries_language_duration_flags_and_words() -> None:
    data = json.loads(render(TRANSCRIPT, "json"))
    assert data["text"] == TRANSCRIPT.text
    assert data["language"] == "en"
    assert data["language_probability"] == pytest.approx(0.9877)
    assert data["duration"] == pytest.approx(3726.5)
    assert data["has_speech"] is True
    assert data["truncated"] is True
    assert data["model"] == "tiny.en:int8:beam5:vad1"
    first, _, last = data["segments"]
    assert first["words"] == [
        {"start": 0.0, "end": 0.4, "word": " And", "probability": 0.91},
        {"start": 0.4, "end": 0.6, "word": " so", "probability": 0.88},
    ]
    assert first["flags"] == []
    assert last["flags"] == [LOW_CONFIDENCE]
    assert last["text"] == "ask not <what> AT&T can do -->"  # json is not markup: text as spoken
    assert "words" not in last


def test_no_speech_renders_empty_documents() -> None:
    silent = Transcript(segments=(), language=None, language_probability=0.0, duration_s=10.0, model="m")
    assert render(silent, "txt") == ""
    assert render(silent, "srt") == ""
    assert render(silent, "vtt") == "WEBVTT\n"
    data = json.loads(render(silent, "json"))
    assert data["has_speech"] is False
    assert data["segments"] == []


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="docx") as caught:
        render(TRANSCRIPT, "docx")
    for fmt in FORMATS:
        assert fmt in str(caught.value)
