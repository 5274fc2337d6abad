"""/v1/audio/translations through the official openai client: English from German speech with a multilingual
model, a 400 with the sentence from an English-only one; verbose_json names why a clip is in its language."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import openai
import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.sentences import cannot_translate
from tests.audio_tools import to_wav
from tests.http.conftest import Running, running_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client marks translations deprecated
AMBIGUOUS_S = (35.0, 36.5)
"""A second and a half of German that `base` alone takes for English (p≈0.65, German p≈0.2)."""


def _german(audio: Callable[[str], bytes], start_s: float, end_s: float) -> tuple[str, bytes]:
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples
    return "note.wav", to_wav(samples[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)])


@pytest.fixture
async def base_server(make_settings: Callable[..., Settings],
                      base_engine: FasterWhisperEngine) -> AsyncIterator[Running]:
    async with running_server(make_settings(model="base"), base_engine) as running:
        yield running


async def test_german_speech_comes_back_in_english(base_server: Running, audio: Callable[[str], bytes]) -> None:
    result = await base_server.client().audio.translations.create(
        model="whisper-1", file=_german(audio, 31.0, 43.0), response_format="verbose_json")
    words = set(result.text.lower().replace(",", " ").replace(".", " ").split())
    assert {"software", "documentation"} <= words, result.text
    assert not {"jedem", "der", "die", "und", "diese", "dokumentationsdateien"} & words, result.text
    assert (result.task, result.language) == ("translate", "german")


async def test_an_english_only_model_answers_400_with_the_sentence(
    server: Running, audio: Callable[[str], bytes]
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await server.client().audio.translations.create(model="whisper-1", file=_german(audio, 31.0, 35.0))
    assert refused.value.status_code == 400
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["message"] == cannot_translate("tiny.en")
    assert (error["code"], error["param"]) == ("cannot_translate", "model")
    assert server.service.metrics.transcriptions._value.get() == 0  # refused before any transcription


async def test_verbose_json_names_why_a_short_clip_is_in_its_language(
    base_server: Running, audio: Callable[[str], bytes]
) -> None:
    client = base_server.client()  # one API key: one conversation
    first = await client.audio.transcriptions.create(
        model="whisper-1", file=_german(audio, 31.0, 41.0), response_format="verbose_json")
    assert (first.language, first.language_reason) == ("german", "detected")  # type: ignore[attr-defined]
    # A short clip that base alone takes for another language, sent next by the same caller.
    short = await client.audio.transcriptions.create(
        model="whisper-1", file=_german(audio, *AMBIGUOUS_S), response_format="verbose_json")
    assert (short.language, short.language_reason) == ("german", "recent_notes")  # type: ignore[attr-defined]

