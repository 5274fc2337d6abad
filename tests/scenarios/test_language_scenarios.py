"""Translation asked of an English-only model, in a chat on each platform: one sentence, at once."""

from __future__ import annotations

from collections.abc import Callable

from chatscribe.core.sentences import cannot_translate
from chatscribe.core.service import TranscriptionService
from tests.scenarios.drivers import Driver, answers
from tests.scenarios.test_chat_scenarios import chat, service  # noqa: F401 (the suite's fixtures)


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
