"""Translation that translates: German speech comes back in English with the multilingual `base`; an
English-only model refuses with a sentence instead of a transcript labelled as translated. Real models,
the German half of the shared multilingual.mp3."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from chatscribe.core.engines.batching import Batcher, Clip
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import CannotTranslate
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import normalize
from chatscribe.core.sentences import cannot_translate
from chatscribe.core.transcript import Transcript

GERMAN = (31.0, 43.0)
"""Seconds of multilingual.mp3: "Jedem, der diese Software und die dazugehörigen Dokumentationsdateien erhält…"."""
ENGLISH_WORDS = {"software", "documentation", "each", "the", "and"}
"""What its meaning gives in English (the reference's text_de_approx is the MIT licence)."""
GERMAN_WORDS = {"jedem", "der", "die", "und", "diese", "dazugehörigen", "dokumentationsdateien", "erhält", "hiermit"}


@pytest.fixture(scope="module")
def german(audio: Callable[[str], bytes]) -> np.ndarray:
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples
    return samples[int(GERMAN[0] * SAMPLE_RATE) : int(GERMAN[1] * SAMPLE_RATE)]


def _words(transcript: Transcript | Exception) -> set[str]:
    assert isinstance(transcript, Transcript), transcript
    return set(normalize(transcript.text).split())


def _english(transcript: Transcript | Exception) -> None:
    words = _words(transcript)
    assert {"software", "documentation"} <= words, words
    assert len(ENGLISH_WORDS & words) >= 4, words
    assert not GERMAN_WORDS & words, f"German words in the translation: {sorted(GERMAN_WORDS & words)}"


def test_german_speech_translated_with_a_multilingual_model_comes_back_in_english(
    base_engine: FasterWhisperEngine, german: np.ndarray
) -> None:
    translated = base_engine.transcribe(german, TranscribeOptions(task="translate"))
    _english(translated)
    assert (translated.task, translated.language) == ("translate", "de")  # the spoken language, as OpenAI says


@pytest.mark.parametrize("strategy", ["packed", "batched"])
def test_a_translate_note_and_a_transcribe_note_in_one_batch_each_keep_their_task(
    base_engine: FasterWhisperEngine, german: np.ndarray, strategy: str
) -> None:
    batcher = Batcher(base_engine, strategy=strategy)  # type: ignore[arg-type]
    translated, transcribed = batcher.transcribe([Clip(german, TranscribeOptions(task="translate")),
                                                  Clip(german, TranscribeOptions())])
    _english(translated)
    assert isinstance(translated, Transcript)
    assert translated.task == "translate"
    assert isinstance(transcribed, Transcript)
    assert transcribed.task == "transcribe"
    assert {"der", "diese", "software", "und"} <= _words(transcribed), transcribed.text


def test_an_english_only_model_refuses_to_translate_instead_of_transcribing(
    tiny_engine: FasterWhisperEngine, german: np.ndarray
) -> None:
    with pytest.raises(CannotTranslate) as refused:
        tiny_engine.transcribe(german, TranscribeOptions(task="translate"))
    assert refused.value.user_message == cannot_translate("tiny.en")
    assert "CHATSCRIBE_MODEL=base" in refused.value.user_message
    short = german[: 4 * SAMPLE_RATE]
    refusal, transcript = Batcher(tiny_engine, strategy="packed").transcribe(
        [Clip(short, TranscribeOptions(task="translate")), Clip(short, TranscribeOptions())])
    assert isinstance(refusal, CannotTranslate)
    assert isinstance(transcript, Transcript)
    assert transcript.task == "transcribe"
