"""The real models on the shared audio, and the quality pass that keeps invented words out of chats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import normalize, screen
from chatscribe.core.transcript import HALLUCINATION, LOW_CONFIDENCE, Segment, Transcript
from tests.wer import wer

HOUR = 3600.0
GERMAN_HALF_S = 31.0  # multilingual.mp3 switches to German at about 0:30


@pytest.fixture(scope="session")
def tiny_engine_without_vad(model_dir: Path) -> FasterWhisperEngine:
    """Plain Whisper decoding of every window: the quality pass alone must keep silence silent."""
    return FasterWhisperEngine(resolve_model("tiny.en", model_dir), device="cpu", vad=False)


@pytest.fixture(scope="session")
def decoded(audio: Callable[[str], bytes]) -> Callable[[str], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = decode_audio(audio(name), max_duration_s=HOUR).samples
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["jfk_voice.ogg", "jfk.m4a", "jfk.webm", "jfk_video_note.mp4"])
def test_platform_recordings_give_the_reference_text(
    name: str, tiny_engine: FasterWhisperEngine, decoded: Callable[[str], np.ndarray],
    references: dict[str, dict[str, object]],
) -> None:
    reference = str(references[str(references[name]["same_as"])]["text"])
    samples = decoded(name)
    transcript = screen(tiny_engine.transcribe(samples, TranscribeOptions()), samples)
    assert transcript.has_speech
    assert transcript.language == "en"
    assert wer(reference, transcript.text) <= 0.10, transcript.text
    assert not transcript.dropped, "real speech was dropped as a hallucination"


@pytest.mark.parametrize("name", ["silence_10s.ogg", "noise_10s.ogg"])
@pytest.mark.parametrize("vad", [True, False], ids=["vad", "no-vad"])
def test_silence_and_noise_give_no_speech_and_no_words(
    name: str, vad: bool, tiny_engine: FasterWhisperEngine, tiny_engine_without_vad: FasterWhisperEngine,
    decoded: Callable[[str], np.ndarray],
) -> None:
    engine = tiny_engine if vad else tiny_engine_without_vad
    samples = decoded(name)
    transcript = screen(engine.transcribe(samples, TranscribeOptions(word_timestamps=True)), samples)
    assert not transcript.has_speech
    assert transcript.text == ""
    assert transcript.segments == ()
    assert transcript.language is None


def test_multilingual_recording_is_detected_as_english_with_base(
    base_engine: FasterWhisperEngine, decoded: Callable[[str], np.ndarray],
) -> None:
    # Detection reads the first 30 s: the English half, which is all the test transcribes.
    samples = decoded("multilingual.mp3")[: 30 * SAMPLE_RATE]
    transcript = screen(base_engine.transcribe(samples, TranscribeOptions()), samples)
    assert transcript.language == "en"
    assert transcript.language_probability > 0.5
    words = set(normalize(transcript.text).split())
    assert {"permission", "granted", "software", "documentation", "copy"} <= words, transcript.text


def test_german_half_transcribed_in_german_when_asked(
    base_engine: FasterWhisperEngine, decoded: Callable[[str], np.ndarray],
) -> None:
    german = decoded("multilingual.mp3")[int(GERMAN_HALF_S * SAMPLE_RATE) :]
    transcript = screen(base_engine.transcribe(german, TranscribeOptions(language="de")), german)
    assert transcript.language == "de"
    words = set(transcript.text.lower().replace(",", " ").replace(".", " ").split())
    expected = {"software", "der", "die", "und", "zu", "genehmigung", "kopien", "verkaufen", "rechte",
                "bedingungen", "veröffentlichen", "verteilen"}
    assert len(words & expected) >= 8, transcript.text


def test_expected_languages_restrict_detection(
    base_engine: FasterWhisperEngine, decoded: Callable[[str], np.ndarray],
) -> None:
    german = decoded("multilingual.mp3")[int(GERMAN_HALF_S * SAMPLE_RATE) :][: 4 * SAMPLE_RATE]
    among_en_de = TranscribeOptions(expected_languages=("en", "de"), temperature=0.0)
    assert base_engine.transcribe(german, among_en_de).language == "de"
    # German is not expected here: detection picks the likelier of the expected ones, never German
    among_en_fr = TranscribeOptions(expected_languages=("en", "fr"), temperature=0.0)
    assert base_engine.transcribe(german, among_en_fr).language in ("en", "fr")


# The quality pass on constructed segments: the signals Whisper attaches, over real or silent audio.


@pytest.fixture(scope="session")
def speech(decoded: Callable[[str], np.ndarray]) -> np.ndarray:
    return decoded("jfk.flac")


SILENCE = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)


def transcript_of(*segments: Segment) -> Transcript:
    return Transcript(segments=segments, language="en", language_probability=0.9, duration_s=10.0,
                      model="test")


def test_phantom_phrase_over_silence_is_dropped() -> None:
    phantom = Segment(0.0, 4.0, " Thank you for watching!", avg_logprob=-0.5, no_speech_prob=0.2)
    result = screen(transcript_of(phantom), SILENCE)
    assert not result.has_speech
    assert result.language is None
    assert [s.text for s in result.dropped] == [" Thank you for watching!"]
    assert HALLUCINATION in result.dropped[0].flags


def test_the_same_phrase_spoken_over_speech_is_kept(speech: np.ndarray) -> None:
    spoken = Segment(0.0, 4.0, " Thank you for watching!", avg_logprob=-0.2, no_speech_prob=0.05)
    result = screen(transcript_of(spoken), speech)
    assert result.text == "Thank you for watching!"
    assert result.language == "en"


@pytest.mark.parametrize("text", [" ...", " ♪", " -", " 1.0%"])
def test_punctuation_and_numbers_over_silence_are_dropped(text: str) -> None:
    result = screen(transcript_of(Segment(0.0, 5.0, text, avg_logprob=-0.8, no_speech_prob=0.5)), SILENCE)
    assert not result.has_speech


def test_looping_ngrams_are_dropped_even_over_speech(speech: np.ndarray) -> None:
    loop = Segment(5.0, 10.0, " ask not what your country" * 5, avg_logprob=-0.3, compression_ratio=1.8)
    real = Segment(0.0, 5.0, " And so my fellow Americans", avg_logprob=-0.3)
    result = screen(transcript_of(real, loop), speech)
    assert result.text == "And so my fellow Americans"
    assert [s.start for s in result.dropped] == [5.0]


def test_overcompressed_text_is_dropped(speech: np.ndarray) -> None:
    repetitive = Segment(0.0, 5.0, " country country country, country", compression_ratio=3.1)
    assert not screen(transcript_of(repetitive), speech).has_speech


def test_whisper_own_no_speech_rule_drops_a_silent_window(speech: np.ndarray) -> None:
    silent_window = Segment(0.0, 5.0, " so my fellow", avg_logprob=-1.4, no_speech_prob=0.8)
    assert not screen(transcript_of(silent_window), speech).has_speech


def test_low_average_logprob_is_kept_and_flagged_low_confidence(speech: np.ndarray) -> None:
    doubtful = Segment(0.0, 5.0, " And so my fellow Americans", avg_logprob=-1.3, no_speech_prob=0.1)
    result = screen(transcript_of(doubtful), speech)
    assert result.text == "And so my fellow Americans"
    assert result.segments[0].flags == {LOW_CONFIDENCE}
    assert result.flagged


def test_real_speech_with_good_signals_is_kept_unflagged(speech: np.ndarray) -> None:
    segments = (
        Segment(0.0, 5.5, " And so my fellow Americans, ask not what your country can do for you,",
                avg_logprob=-0.25, no_speech_prob=0.05, compression_ratio=1.3),
        Segment(5.5, 11.0, " ask what you can do for your country.", avg_logprob=-0.25, no_speech_prob=0.05,
                compression_ratio=1.3),
    )
    result = screen(transcript_of(*segments), speech)
    assert result.segments == tuple(segments)
    assert not result.flagged
    assert result.dropped == ()
