"""OpenAI's streaming transcription events and log-probabilities, through the official `openai` client against
the running server (tiny.en): what a program written for OpenAI's API sees."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import openai
import pytest
from faster_whisper.tokenizer import Tokenizer

from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.media import decode_audio
from chatscribe.core.options import TranscribeOptions
from tests.http.conftest import Running
from tests.wer import wer

LONG = "multilingual.mp3"
"""A minute of speech: two of Whisper's 30 s windows, so the first window's text is known a window early."""


def _transcriptions_done(server: Running) -> float:
    return server.service.metrics.registry.get_sample_value("chatscribe_transcriptions_total") or 0.0


async def _stream(server: Running, file: tuple[str, bytes], **extra: object) -> tuple[list[Any], list[float]]:
    """Every event the client yields, and how many transcriptions the server had finished when it arrived."""
    stream = await server.client().audio.transcriptions.create(model="whisper-1", file=file, stream=True, **extra)
    events: list[Any] = []
    finished_then: list[float] = []
    async for event in stream:
        events.append(event)
        finished_then.append(_transcriptions_done(server))
    return events, finished_then


async def test_stream_sends_text_deltas_as_decoded_that_join_to_the_done_text(server: Running, audio) -> None:
    events, finished_then = await _stream(server, (LONG, audio(LONG)))
    kinds = [getattr(e, "type", None) for e in events]
    # Only OpenAI's two event types reach the program: the progress extension is skipped by the client.
    assert set(kinds) == {"transcript.text.delta", "transcript.text.done"}
    assert kinds[-1] == "transcript.text.done"
    assert kinds.count("transcript.text.done") == 1
    deltas, done = events[:-1], events[-1]
    assert len(deltas) >= 2
    # The first words reached the program while the server was still transcribing the rest.
    assert finished_then[0] == 0.0
    assert finished_then[-1] == 1.0
    assert "".join(d.delta for d in deltas) == done.text
    assert all(d.logprobs is None for d in deltas)
    assert done.logprobs is None
    usage = done.usage
    assert usage.type == "tokens"
    assert usage.output_tokens > len(done.text.split()) / 2
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # The same words as the answer without streaming.
    plain = await server.client().audio.transcriptions.create(model="whisper-1", file=(LONG, audio(LONG)),
                                                              response_format="verbose_json")
    assert plain.text == done.text
    assert abs(usage.input_tokens - math.ceil(plain.duration * 50)) <= 1  # the encoder's 50 positions a second


async def test_stream_with_logprobs_gives_each_deltas_words_with_their_log_probabilities(
    server: Running, audio, references: dict[str, dict[str, object]],
) -> None:
    events, _ = await _stream(server, ("jfk.flac", audio("jfk.flac")), include=["logprobs"])
    deltas, done = events[:-1], events[-1]
    assert deltas
    assert done.type == "transcript.text.done"
    assert wer(str(references["jfk.flac"]["text"]), done.text) < 0.2
    assert "".join(d.delta for d in deltas) == done.text
    for delta in deltas:
        assert delta.logprobs
        assert "".join(p.token for p in delta.logprobs).strip() == delta.delta.strip()
        assert all(p.logprob <= 0 and bytes(p.bytes) == p.token.encode() for p in delta.logprobs)
    streamed = [p.token for d in deltas for p in d.logprobs]
    assert [p.token for p in done.logprobs] == streamed


async def test_json_with_include_logprobs_gives_word_log_probabilities(server: Running, audio) -> None:
    client = server.client()
    result = await client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", audio("jfk.flac")),
                                                      include=["logprobs"])
    assert result.logprobs
    assert "".join(p.token for p in result.logprobs).strip() == result.text
    assert all(p.logprob is not None and p.logprob <= 0 for p in result.logprobs)
    # Words Whisper is sure of score near 0; their mean is a real probability, not a placeholder.
    assert -1.0 < sum(p.logprob for p in result.logprobs) / len(result.logprobs) < 0
    plain = await client.audio.transcriptions.create(model="whisper-1", file=("jfk.flac", audio("jfk.flac")))
    assert plain.logprobs is None


async def test_logprobs_with_a_plain_text_format_is_refused_in_one_sentence(server: Running, audio) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await server.client().audio.transcriptions.create(
            model="whisper-1", file=("jfk.flac", audio("jfk.flac")), include=["logprobs"], response_format="srt")
    assert "include[]=logprobs works with response_format json" in str(refused.value)


async def test_verbose_json_reports_the_decoders_tokens_and_temperature(
    server: Running, audio: Callable[[str], bytes], tiny_engine: FasterWhisperEngine,
) -> None:
    result = await server.client().audio.transcriptions.create(
        model="whisper-1", file=("jfk.flac", audio("jfk.flac")), response_format="verbose_json")
    segments = result.segments or []
    assert segments
    tokenizer = Tokenizer(tiny_engine._model.hf_tokenizer, False)
    for segment in segments:
        assert segment.tokens  # Whisper's token ids, which spell the segment's text
        assert tokenizer.decode(segment.tokens).strip() == segment.text.strip()
    # The temperature is what the decoder itself reports for this audio (the same engine, called directly).
    direct = tiny_engine.transcribe(decode_audio(audio("jfk.flac"), max_duration_s=60).samples,
                                    TranscribeOptions())
    assert [s.temperature for s in segments] == [s.temperature for s in direct.segments]
