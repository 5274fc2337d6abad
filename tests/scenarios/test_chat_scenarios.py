"""What a person sees on each chat platform, one scenario suite for all three: the real bot in this
process against its fake on 127.0.0.1, the real tiny.en model, the shared test audio."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import Busy, MediaTooLarge, UnacceptedFormat
from chatscribe.core.i18n import localize
from chatscribe.core.media import ACCEPTED_FORMATS, SAMPLE_RATE, MediaRequest, decode_audio
from chatscribe.core.sentences import NO_SPEECH, RATE_LIMITED, language_set, speakers_set, unknown_language
from chatscribe.core.service import TranscriptionService
from tests.audio_tools import to_wav
from tests.scenarios.drivers import PLATFORMS, Driver, answers, running
from tests.wer import wer

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
ENGLISH_HALF_S = 30.0
"""multilingual.mp3 is English up to about 0:30, then German."""
GERMAN_WORDS = {"software", "der", "die", "und", "zu", "genehmigung", "kopien", "verkaufen", "rechte",
                "bedingungen", "veröffentlichen", "verteilen", "dokumentationsdateien", "hiermit"}
"""Words of the German half of multilingual.mp3 ("software" is in its English half too)."""
MAX_FILE_MB = 1
"""CHATSCRIBE_MAX_FILE_MB for these scenarios: above every shared voice note, below what "too large" declares."""


@pytest.fixture
async def service(request: pytest.FixtureRequest, tmp_path: Path,
                  tiny_engine: FasterWhisperEngine) -> AsyncIterator[TranscriptionService]:
    marker = request.node.get_closest_marker("settings")
    values = {"model": "tiny.en", "max_file_mb": MAX_FILE_MB, **(marker.kwargs if marker else {})}
    engine = request.getfixturevalue("base_engine") if values["model"] == "base" else tiny_engine
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", device="cpu", **values)  # type: ignore[call-arg]
    async with TranscriptionService(settings=settings, engine=engine) as running_service:
        yield running_service


@pytest.fixture(params=PLATFORMS)
async def chat(request: pytest.FixtureRequest, service: TranscriptionService) -> AsyncIterator[Driver]:
    async with running(request.param, service) as driver:
        yield driver


async def test_a_voice_note_is_answered_with_its_transcript(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    await chat.send_voice("voice-message.ogg", audio("jfk_voice.ogg"))

    (answer,) = await answers(chat, service, 1)

    assert wer(JFK, answer) < 0.3, answer
    assert chat.downloads() == 1


async def test_silence_is_answered_no_speech_detected(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    await chat.send_voice("quiet.ogg", audio("silence_10s.ogg"))

    assert await answers(chat, service, 1) == [NO_SPEECH]


async def test_an_unreadable_file_gets_its_sentence_and_the_next_file_is_still_answered(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    await chat.send_voice("notes.ogg", audio("not_audio.ogg"))
    (refusal,) = await answers(chat, service, 1)
    assert refusal == UnacceptedFormat(", ".join(ACCEPTED_FORMATS.values())).user_message

    await chat.send_voice("voice-message.ogg", audio("jfk_voice.ogg"))
    first, second = await answers(chat, service, 2)

    assert first == refusal
    assert wer(JFK, second) < 0.3, second


async def test_a_file_declared_over_the_size_limit_is_refused_without_a_download(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    declared = 5_000_000  # over CHATSCRIBE_MAX_FILE_MB, under every platform's own limit
    await chat.send_voice("long.ogg", audio("jfk_voice.ogg"), size=declared)

    (refusal,) = await answers(chat, service, 1)

    assert refusal.startswith(MediaTooLarge(declared, MAX_FILE_MB * 1_000_000).user_message), refusal
    assert chat.downloads() == 0


@pytest.mark.settings(max_file_mb=100)  # the long recording is an uncompressed WAV
async def test_a_long_transcript_is_split_under_the_platforms_limit_and_nothing_is_lost(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes],
    references: dict[str, dict[str, object]],
) -> None:
    # As few rounds of speech as give a transcript past one part's limit (with a margin for words the model
    # may drop), so the recording is as short as still needs splitting on this platform.
    spoken = f"{references['multilingual.mp3']['text_en']} {JFK} "
    rounds = math.ceil(1.15 * chat.limit / chat.measure(spoken))
    recording = long_recording(audio, rounds)
    await chat.send_voice("meeting.wav", recording)

    texts = await answers(chat, service, 1)

    parts = chat.parts()
    assert len(parts) >= 2, f"{len(parts)} part(s): the transcript was not long enough to need splitting"
    assert all(chat.measure(part) <= chat.limit for part in parts), [chat.measure(p) for p in parts]
    whole = await service.transcribe(MediaRequest(platform="cli", chat_id="check", user_id="check",
                                                  fetch=lambda _limit: _bytes(recording), size_bytes=len(recording)))
    assert _words("".join(texts)) == _words(whole.text), "the joined parts are not the whole transcript"
    assert wer(spoken * rounds, "".join(texts)) < 0.3


@pytest.mark.settings(user_rate="1/min")
async def test_past_the_rate_limit_a_note_is_answered_with_the_busy_sentence(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    await chat.send_voice("quiet.ogg", audio("silence_10s.ogg"))
    assert await answers(chat, service, 1) == [NO_SPEECH]

    await chat.send_voice("voice-message.ogg", audio("jfk_voice.ogg"))  # a second new file within the minute
    first, refusal = await answers(chat, service, 2)

    assert first == NO_SPEECH
    assert refusal == Busy(60, reason=RATE_LIMITED).user_message, refusal


@pytest.mark.settings(model="base")  # multilingual
async def test_a_language_set_by_the_platforms_command_is_used_for_the_next_file(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    # multilingual.mp3 speaks English, then German from 0:31; detected, the German half comes out in German.
    confirmed = await chat.command("language", "English")
    assert language_set("en").lower() in confirmed.lower(), confirmed

    before = len(chat.texts())
    await chat.send_voice("voice-message.ogg", audio("multilingual_voice.ogg"))
    answer = " ".join((await answers(chat, service, before + 1))[before:])  # with any note on what was missing

    words = set(answer.lower().replace(",", " ").replace(".", " ").split()) & GERMAN_WORDS
    assert len(words) <= 2, f"German words {sorted(words)} in a transcript asked for in English: {answer}"
    assert "permission is hereby granted" in answer.lower(), answer


async def test_an_unknown_setting_value_is_refused_naming_what_is_accepted_and_changes_nothing(
    chat: Driver, service: TranscriptionService
) -> None:
    before = await chat.command("settings")
    assert "Language: auto" in before, before

    refusal = await chat.command("language", "klingon")

    assert unknown_language("klingon") in refusal, refusal
    assert await chat.command("settings") == before


async def test_speaker_labels_are_set_with_the_platforms_command_and_shown_in_its_settings(
    chat: Driver, service: TranscriptionService
) -> None:
    assert "Speaker labels: off" in await chat.command("settings")

    confirmed = await chat.command("speakers", "auto")

    assert str(speakers_set("auto")).lower() in confirmed.lower(), confirmed
    assert "Speaker labels: auto" in await chat.command("settings")
    await chat.command("speakers", "off")
    assert "Speaker labels: off" in await chat.command("settings")


async def test_replies_set_with_the_platforms_command_put_the_bots_words_in_that_language_not_the_transcript(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]
) -> None:
    confirmed = await chat.command("replies", "de")
    assert "Ich antworte hier auf Deutsch (de)." in confirmed, confirmed
    assert "Antworten: Deutsch (de)" in await chat.command("settings")

    before = len(chat.texts())
    await chat.send_voice("quiet.ogg", audio("silence_10s.ogg"))
    await chat.send_voice("voice-message.ogg", audio("jfk_voice.ogg"))
    replies = (await answers(chat, service, before + 2))[before:]  # in the order they were done

    assert localize(NO_SPEECH, "de") == "Keine Sprache erkannt."
    assert "Keine Sprache erkannt." in replies, replies
    (speech,) = [text for text in replies if text != "Keine Sprache erkannt."]
    assert wer(JFK, speech) < 0.3, speech  # what was said stays as it was said
    refusal = await chat.command("replies", "klingon")
    assert refusal.startswith("Antworten kennt auto"), refusal  # refused in the language in force


async def test_with_speakers_on_a_two_channel_call_is_answered_turn_by_turn(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes],
    references: dict[str, dict[str, object]],
) -> None:
    await chat.command("speakers", "on")
    before = len(chat.texts())
    await chat.send_voice("call.wav", audio("stereo_diarization.wav"))

    answer = (await answers(chat, service, before + 1))[before]

    # Each turn starts with its channel's name (in bold on Discord and Slack), the channel's words after it.
    turns = dict(turn.replace("*", "").split(": ", 1) for turn in answer.split("\n\n"))
    assert sorted(turns) == ["Left", "Right"], answer
    expected = references["stereo_diarization.wav"]
    assert wer(str(expected["text_left"]), turns["Left"]) < 0.3, answer
    assert wer(str(expected["text_right"]), turns["Right"]) < 0.3, answer


def long_recording(audio: Callable[[str], bytes], rounds: int) -> bytes:
    """One WAV file: `rounds` times the English half of multilingual.mp3 then JFK, half a second apart.
    (The same sentence said over and over makes tiny.en skip whole passages as if already heard.)"""
    english = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples[: int(ENGLISH_HALF_S * SAMPLE_RATE)]
    jfk = decode_audio(audio("jfk_voice.ogg"), max_duration_s=120).samples
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    return to_wav(np.concatenate([english, pause, jfk, pause] * rounds))


async def _bytes(data: bytes) -> bytes:
    return data


def _words(text: str) -> list[str]:
    return text.split()
