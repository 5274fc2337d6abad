"""Languages in chats: translation asked of an English-only model gets one sentence at once, on each
platform; a short clip detection is unsure of takes the sender's app language (Telegram)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatscribe.core.media import SAMPLE_RATE, MediaRequest, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.sentences import cannot_translate
from chatscribe.core.service import TranscriptionService
from tests.audio_tools import to_wav
from tests.scenarios.drivers import TELEGRAM_CHAT, Driver, TelegramDriver, answers, running
from tests.scenarios.test_chat_scenarios import chat, service  # noqa: F401 (the suite's fixtures)
from tests.wer import wer


async def test_translation_with_an_english_only_model_gets_one_sentence_and_nothing_transcribed(
    chat: Driver, service: TranscriptionService, audio: Callable[[str], bytes]  # noqa: F811
) -> None:
    await chat.command("translate", "on")
    before = len(chat.texts())

    await chat.send_voice("voice-message.ogg", audio("multilingual_voice.ogg"))
    said = (await answers(chat, service, before + 1))[before:]

    assert said == [cannot_translate("tiny.en")], said
    assert chat.downloads() == 0, "refused before anything was fetched or transcribed"
    assert service.metrics.transcriptions._value.get() == 0


AMBIGUOUS_S = (35.0, 36.5)
"""A second and a half of multilingual.mp3's German that `base` alone takes for English."""


@pytest.mark.settings(model="base")
async def test_a_short_unsure_clip_from_a_german_telegram_app_is_answered_in_german(
    service: TranscriptionService, audio: Callable[[str], bytes]  # noqa: F811
) -> None:
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples
    clip = to_wav(samples[int(AMBIGUOUS_S[0] * SAMPLE_RATE) : int(AMBIGUOUS_S[1] * SAMPLE_RATE)])
    german = await service.transcribe(_request(clip), TranscribeOptions(language="de"))  # what German gives

    async with running("telegram", service) as telegram:
        assert isinstance(telegram, TelegramDriver)
        fake = telegram.fake
        update = await fake.push(fake.voice(clip, chat_id=TELEGRAM_CHAT, duration=2, language_code="de"))
        await fake.wait_for(lambda: fake.acknowledged_below > update)
        (answer,) = await answers(telegram, service, 1)

    assert german.text.strip()
    assert wer(german.text, answer) < 0.2, (answer, german.text)


def _request(data: bytes) -> MediaRequest:
    async def fetch(limit: int) -> bytes:
        return data

    return MediaRequest(platform="cli", chat_id="reference", user_id="test", fetch=fetch, size_bytes=len(data))
