"""Who said what through the OpenAI-compatible API, driven by the official `openai` client against the running
server: diarized_json parsed into the client's own diarized type, its streamed segment events, speaker labels
in verbose_json, SRT and VTT, and known speakers' clips refused with a sentence when they are not 2–10 s of
audio."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Callable
from typing import Any

import numpy as np
import openai
import pytest
from openai.types.audio import TranscriptionDiarized, TranscriptionTextDoneEvent, TranscriptionTextSegmentEvent

from chatscribe.bots.openai_upload import REFERENCE_LIMIT_BYTES
from chatscribe.core import MAX_KNOWN_SPEAKERS
from chatscribe.core.media import SAMPLE_RATE
from chatscribe.core.sentences import SPEAKER_MODE_CHOICES, known_speakers_refused
from tests.audio_tools import to_wav
from tests.http.conftest import Running
from tests.wer import wer

CALL = "stereo_diarization.wav"
"""Two voices, one on each channel (the shared test audio)."""


@pytest.fixture
def call(audio: Callable[[str], bytes]) -> tuple[str, bytes]:
    return CALL, audio(CALL)


@pytest.fixture
def sides(references: dict[str, dict[str, object]]) -> tuple[str, str]:
    expected = references[CALL]
    return str(expected["text_left"]), str(expected["text_right"])


def _said_by(segments: list[tuple[str, str]]) -> dict[str, str]:
    """Each speaker's words, joined in order."""
    words: dict[str, list[str]] = {}
    for speaker, text in segments:
        words.setdefault(speaker, []).append(text)
    return {speaker: " ".join(texts) for speaker, texts in words.items()}


async def test_diarized_json_is_openais_diarized_object_with_each_voice_labelled(
    server: Running, call: tuple[str, bytes], sides: tuple[str, str]
) -> None:
    result = await server.client().audio.transcriptions.create(
        model="whisper-1", file=call, response_format="diarized_json")

    assert isinstance(result, TranscriptionDiarized)
    assert result.task == "transcribe"
    assert result.duration == pytest.approx(5.0, abs=0.1)
    assert all(s.type == "transcript.text.segment" for s in result.segments)
    assert len({s.id for s in result.segments}) == len(result.segments)
    assert [s.start for s in result.segments] == sorted(s.start for s in result.segments)
    said = _said_by([(s.speaker, s.text) for s in result.segments])
    assert sorted(said) == ["A", "B"], said
    left, right = sides
    assert wer(left, said["A"]) < 0.3, said  # A speaks first: the left channel
    assert wer(right, said["B"]) < 0.3, said
    assert wer(f"{left} {right}", result.text) < 0.3
    assert result.usage is not None
    assert result.usage.type == "duration"


async def test_diarized_json_streams_segment_events_then_the_done_event(
    server: Running, call: tuple[str, bytes], sides: tuple[str, str]
) -> None:
    stream = await server.client().audio.transcriptions.create(
        model="whisper-1", file=call, response_format="diarized_json", stream=True)
    events = [event async for event in stream]

    *segments, done = events
    assert segments
    assert all(isinstance(event, TranscriptionTextSegmentEvent) for event in segments), events
    assert isinstance(done, TranscriptionTextDoneEvent)
    said = _said_by([(e.speaker, e.text) for e in segments])
    assert sorted(said) == ["A", "B"], said
    assert wer(sides[1], said["B"]) < 0.3, said
    assert done.text == " ".join(e.text for e in segments)


async def test_one_voice_in_diarized_json_is_speaker_a(server: Running, audio: Callable[[str], bytes]) -> None:
    result = await server.client().audio.transcriptions.create(
        model="whisper-1", file=("jfk.ogg", audio("jfk_voice.ogg")), response_format="diarized_json")

    assert isinstance(result, TranscriptionDiarized)
    assert result.segments
    assert {s.speaker for s in result.segments} == {"A"}
    assert "ask not what your country" in result.text.lower()


async def test_speakers_on_labels_verbose_json_segments_and_the_subtitles(
    server: Running, call: tuple[str, bytes]
) -> None:
    client = server.client()
    verbose = await client.audio.transcriptions.create(
        model="whisper-1", file=call, response_format="verbose_json", extra_body={"speakers": "on"})
    vtt = await client.audio.transcriptions.create(
        model="whisper-1", file=call, response_format="vtt", extra_body={"speakers": "on"})
    srt = await client.audio.transcriptions.create(
        model="whisper-1", file=call, response_format="srt", extra_body={"speakers": "on"})
    plain = await client.audio.transcriptions.create(model="whisper-1", file=call, response_format="vtt")

    speakers = [getattr(segment, "speaker", None) for segment in verbose.segments or ()]
    assert set(speakers) == {"Left", "Right"}, speakers
    cues = [line for line in vtt.split("\n") if "-->" not in line and line.strip() and line != "WEBVTT"]
    assert {cue.split(">", 1)[0] for cue in cues} == {"<v Left", "<v Right"}, vtt
    assert "[Left] " in srt
    assert "[Right] " in srt
    assert "<v " not in plain, "without speakers the subtitles are as before"


def _channel_clip(call: bytes, channel: int, seconds: float) -> str:
    """A data URL of the first `seconds` of one channel of a 16-bit WAV: one voice, as a client would send it."""
    with wave.open(io.BytesIO(call)) as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, wav.getnchannels())
        rate = wav.getframerate()
    side = frames[: int(seconds * rate), channel].astype(np.float32) / 32768
    return f"data:audio/wav;base64,{base64.b64encode(to_wav(side)).decode()}"


@pytest.mark.parametrize("channel", [0, 1])
async def test_a_known_speakers_voice_is_labelled_with_their_name(
    server: Running, call: tuple[str, bytes], sides: tuple[str, str], channel: int
) -> None:
    result = await server.client().audio.transcriptions.create(
        model="whisper-1", file=call, response_format="diarized_json", known_speaker_names=["agent"],
        known_speaker_references=[_channel_clip(call[1], channel, 2.5)])

    said = _said_by([(s.speaker, s.text) for s in result.segments])
    assert sorted(said) == ["A", "agent"], said  # the voice of the clip's channel is the agent's
    assert wer(sides[channel], said["agent"]) < 0.3, said

async def _refused(server: Running, **request: Any) -> dict[str, Any]:
    """The 400 body a transcription request gets (the official client raises BadRequestError)."""
    with pytest.raises(openai.BadRequestError) as refused:
        await server.client().audio.transcriptions.create(model="whisper-1", **request)
    error = refused.value.body
    assert isinstance(error, dict)
    return error



async def test_a_known_speakers_clip_must_be_2_to_10_seconds_of_audio(
    server: Running, call: tuple[str, bytes]
) -> None:
    short = to_wav(np.zeros(SAMPLE_RATE, np.float32))
    for clip, says in ((short, "1.0 s long"), (b"these are not sounds", "format")):
        error = await _refused(server, file=call, response_format="diarized_json", known_speaker_names=["agent"],
                               known_speaker_references=[f"data:audio/wav;base64,{base64.b64encode(clip).decode()}"])
        assert says in error["message"], error
        assert "agent" in error["message"], error
        assert error["param"] == "known_speaker_references"


async def test_known_speakers_need_one_data_url_each(server: Running, call: tuple[str, bytes]) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await server.client().audio.transcriptions.create(
            model="whisper-1", file=call, response_format="diarized_json", known_speaker_names=["agent", "customer"],
            known_speaker_references=["https://example.com/agent.wav"])
    assert "one known_speaker_references[] entry for each" in str(refused.value)


@pytest.mark.parametrize(("reference", "says"), [
    ("https://example.com/agent.wav", "must be a data URL"),
    ("data:audio/wav;base64,not*base64", "not valid base64"),
])
async def test_a_known_speakers_reference_that_is_no_base64_data_url_is_refused_with_its_sentence(
    server: Running, call: tuple[str, bytes], reference: str, says: str
) -> None:
    error = await _refused(server, file=call, response_format="diarized_json", known_speaker_names=["agent"],
                           known_speaker_references=[reference])
    assert says in error["message"], error
    assert "agent" in error["message"], error
    assert error["param"] == "known_speaker_references"


NOT_AUDIO = ("clip.wav", b"not audio")
"""The file of a form refused for its known speakers: were it decoded or transcribed, the answer would be
about the file."""
TINY_REFERENCE = f"data:audio/wav;base64,{base64.b64encode(b'RIFF').decode()}"


@pytest.mark.parametrize("many", ["known_speaker_names", "known_speaker_references"])
async def test_more_known_speakers_than_the_limit_are_refused_with_the_options_sentence(
    server: Running, many: str
) -> None:
    names, references = [f"speaker {i}" for i in range(MAX_KNOWN_SPEAKERS + 1)], [TINY_REFERENCE]
    if many == "known_speaker_references":
        names, references = names[:1], references * (MAX_KNOWN_SPEAKERS + 1)

    error = await _refused(server, file=NOT_AUDIO, response_format="diarized_json", known_speaker_names=names,
                           known_speaker_references=references)
    assert error["message"] == str(known_speakers_refused(MAX_KNOWN_SPEAKERS)), error
    assert error["param"] == many


async def test_a_known_speakers_reference_over_the_size_limit_is_refused_with_its_sentence(
    server: Running
) -> None:
    prefix = "data:audio/wav;base64,"
    too_long = prefix + "A" * (REFERENCE_LIMIT_BYTES + 1 - len(prefix))

    error = await _refused(server, file=NOT_AUDIO, response_format="diarized_json", known_speaker_names=["agent"],
                           known_speaker_references=[too_long])
    assert "A known speaker's reference may be at most 2 MB as a data URL" in error["message"], error
    assert error["param"] == "known_speaker_references"


@pytest.mark.parametrize(("extra", "param", "says"), [
    ({"speakers": "loud"}, "speakers", str(SPEAKER_MODE_CHOICES)),
    ({"speakers": "on", "min_speakers": "two"}, "min_speakers", "whole number"),
    ({"speakers": "on", "min_speakers": "3", "max_speakers": "2"}, "min_speakers", "number of speakers"),
])
async def test_a_wrong_speaker_field_is_a_400_with_its_sentence(
    server: Running, call: tuple[str, bytes], extra: dict[str, str], param: str, says: str
) -> None:
    error = await _refused(server, file=call, extra_body=extra)
    assert error["param"] == param
    assert says in error["message"], error


async def test_diarized_json_is_not_offered_for_translations(server: Running, call: tuple[str, bytes]) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await server.client().audio.translations.create(
            model="whisper-1", file=call, response_format="diarized_json")  # type: ignore[call-overload]
    assert "diarized_json" not in str(refused.value).split("one of", 1)[-1]
