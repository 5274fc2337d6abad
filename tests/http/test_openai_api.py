"""The OpenAI-compatible API, driven by the official `openai` client against the running server."""

from __future__ import annotations

import re
from collections.abc import Callable

import openai
import pytest

from tests.http.conftest import Running
from tests.wer import wer

JFK = "jfk_voice.ogg"


@pytest.fixture
def jfk(audio: Callable[[str], bytes]) -> tuple[str, bytes]:
    return JFK, audio(JFK)


@pytest.fixture
def jfk_text(references: dict[str, dict[str, object]]) -> str:
    return str(references["jfk.flac"]["text"])


async def test_json_gives_the_spoken_words(server: Running, jfk, jfk_text: str) -> None:
    result = await server.client().audio.transcriptions.create(model="whisper-1", file=jfk)
    assert wer(jfk_text, result.text) < 0.2


async def test_text_is_plain_text(server: Running, jfk, jfk_text: str) -> None:
    text = await server.client().audio.transcriptions.create(
        model="whisper-1", file=jfk, response_format="text"
    )
    assert isinstance(text, str)
    assert not text.lstrip().startswith("{")
    assert wer(jfk_text, text) < 0.2


async def test_srt_has_numbered_timed_cues(server: Running, jfk, jfk_text: str) -> None:
    srt = await server.client().audio.transcriptions.create(
        model="whisper-1", file=jfk, response_format="srt"
    )
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert blocks[0].startswith("1\n00:00:")
    cue = re.compile(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}")
    assert all(cue.fullmatch(b.split("\n")[1]) for b in blocks)
    spoken = " ".join(" ".join(b.split("\n")[2:]) for b in blocks)
    assert wer(jfk_text, spoken) < 0.2


async def test_vtt_is_webvtt(server: Running, jfk, jfk_text: str) -> None:
    vtt = await server.client().audio.transcriptions.create(
        model="whisper-1", file=jfk, response_format="vtt"
    )
    assert vtt.startswith("WEBVTT\n")
    assert re.search(r"\n00:00:\d\d\.\d{3} --> 00:00:\d\d\.\d{3}\n", vtt)
    assert "ask not what your country" in vtt.lower()


async def test_verbose_json_has_openai_shape_and_words(server: Running, jfk, jfk_text: str) -> None:
    result = await server.client().audio.transcriptions.create(
        model="whisper-1", file=jfk, response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.language == "english"
    assert result.task == "transcribe"
    assert 10.5 < result.duration < 11.5
    assert wer(jfk_text, result.text) < 0.2
    assert result.segments
    first = result.segments[0]
    assert first.id == 0
    assert 0 <= first.start < first.end <= result.duration + 0.5
    for name in ("avg_logprob", "compression_ratio", "no_speech_prob", "tokens", "temperature", "seek"):
        assert getattr(first, name) is not None, name
    words = result.words
    assert words
    assert any(w.word.lower().strip(",.") == "country" for w in words)
    assert all(w.start <= w.end for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


# Translation (/v1/audio/translations): tests/http/test_translation.py, with a model that can translate.


async def test_models_lists_the_configured_model(server: Running) -> None:
    ids = [m.id async for m in server.client().models.list()]
    assert "tiny.en" in ids
    assert "whisper-1" in ids


async def test_unreadable_file_is_400_in_openai_shape(server: Running, audio) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await server.client().audio.transcriptions.create(
            model="whisper-1", file=("random_bytes.ogg", audio("random_bytes.ogg"))
        )
    assert caught.value.status_code == 400
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unreadable"
    assert "couldn't read that file" in error["message"]


async def test_unknown_response_format_is_400(server: Running, jfk) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await server.client().audio.transcriptions.create(
            model="whisper-1", file=jfk, response_format="docx"  # type: ignore[arg-type]
        )
    assert caught.value.body["param"] == "response_format"


@pytest.mark.parametrize("key", ["wrong-key", ""])
async def test_wrong_or_missing_key_is_401(server: Running, jfk, key: str) -> None:
    client = server.client(api_key=key or "placeholder")
    if not key:
        client = client.with_options(default_headers={"Authorization": ""})
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.audio.transcriptions.create(model="whisper-1", file=jfk)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
async def test_speech_that_could_not_be_transcribed_is_named_in_the_answer(
    server: Running, audio: Callable[[str], bytes], response_format: str,
) -> None:
    """multilingual.mp3's second half is German, which the English-only tiny.en cannot write: the answer
    says where speech was heard without words, instead of leaving the hole unmentioned."""
    answer = await server.client().audio.transcriptions.create(
        model="whisper-1", file=("multilingual.mp3", audio("multilingual.mp3")),
        response_format=response_format)  # type: ignore[call-overload]
    extra = answer.model_extra or {}
    gaps = extra.get("gaps") or []
    assert gaps, f"no gap named: {extra}"
    assert gaps[-1]["end"] > 55.0
    assert all(30.0 <= g["start"] < g["end"] for g in gaps)
    assert "could not be transcribed" in extra["notice"]
    assert "permission" in answer.text.lower()
