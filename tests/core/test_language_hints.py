"""A short clip detection is unsure of takes the conversation's language: its recent notes' (kept per
conversation, forgotten with it) or the sender's app language. Real `base`, the shared German speech."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.media import SAMPLE_RATE, MediaRequest, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import RECENT_LANGUAGES, TranscriptionService
from tests.audio_tools import to_wav

CONFIDENT_GERMAN_S = (31.0, 41.0)
AMBIGUOUS_S = (35.0, 36.5)
"""A second and a half of German that `base` alone takes for English (p≈0.65, German p≈0.2)."""


@pytest.fixture(scope="module")
def german(audio: Callable[[str], bytes]) -> Callable[[tuple[float, float]], np.ndarray]:
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=120).samples

    def cut(span: tuple[float, float]) -> np.ndarray:
        return samples[int(span[0] * SAMPLE_RATE) : int(span[1] * SAMPLE_RATE)]

    return cut


@pytest.fixture
async def service(tmp_path: Path, base_engine: FasterWhisperEngine) -> AsyncIterator[TranscriptionService]:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model="base", device="cpu")  # type: ignore[call-arg]
    async with TranscriptionService(settings=settings, engine=base_engine) as running:
        yield running


def _note(chat: str, samples: np.ndarray, sender_language: str | None = None) -> MediaRequest:
    data = to_wav(samples)

    async def fetch(limit: int) -> bytes:
        return data

    return MediaRequest(platform="telegram", chat_id=chat, user_id="7", fetch=fetch, size_bytes=len(data),
                        sender_language=sender_language)


def test_detection_alone_takes_the_ambiguous_clip_for_another_language(
    base_engine: FasterWhisperEngine, german: Callable[[tuple[float, float]], np.ndarray]
) -> None:
    alone = base_engine.transcribe(german(AMBIGUOUS_S), TranscribeOptions())
    assert alone.language != "de"  # what a chat got before: the wrong language, and its words
    assert alone.language_reason == "detected"


async def test_a_short_unsure_clip_in_a_chat_whose_recent_notes_were_german_comes_out_german(
    service: TranscriptionService, german: Callable[[tuple[float, float]], np.ndarray]
) -> None:
    first = await service.transcribe(_note("chat-1", german(CONFIDENT_GERMAN_S)))
    assert (first.language, first.language_reason) == ("de", "detected")
    assert service.preferences.get("telegram", "chat-1", RECENT_LANGUAGES) == "de"

    short = await service.transcribe(_note("chat-1", german(AMBIGUOUS_S)))

    assert (short.language, short.language_reason) == ("de", "recent_notes")
    assert short.text.strip(), "no words"
    await service.forget("telegram", "chat-1")  # forgotten with the chat's other data
    assert service.preferences.get("telegram", "chat-1", RECENT_LANGUAGES) is None


async def test_the_senders_app_language_decides_when_the_chat_has_no_history(
    service: TranscriptionService, german: Callable[[tuple[float, float]], np.ndarray]
) -> None:
    short = await service.transcribe(_note("chat-2", german(AMBIGUOUS_S), sender_language="de-DE"))
    assert (short.language, short.language_reason) == ("de", "sender_language")
    # Chosen from a hint, not detected with confidence: nothing is recorded as the chat's language.
    assert service.preferences.get("telegram", "chat-2", RECENT_LANGUAGES) is None


async def _no_fetch(limit: int) -> bytes:
    return b""


def test_telegram_and_discord_pass_on_the_senders_client_language() -> None:
    from types import SimpleNamespace

    import discord
    from telegram import Message

    from chatscribe.adapters import discord as discord_adapter
    from chatscribe.adapters import telegram as telegram_adapter

    sent = Message.de_json({
        "message_id": 5, "date": 0, "chat": {"id": 42, "type": "private", "first_name": "Ada"},
        "from": {"id": 7, "is_bot": False, "first_name": "Ada", "language_code": "de"},
        "voice": {"file_id": "f", "file_unique_id": "u", "duration": 2, "mime_type": "audio/ogg"}}, None)
    media = telegram_adapter.media_of(sent)
    assert media is not None
    assert telegram_adapter.media_request(sent, media, _no_fetch).sender_language == "de"

    attachment = discord.Attachment(data={  # type: ignore[arg-type]
        "id": "42", "filename": "voice-message.ogg", "size": 1234, "url": "https://cdn.example/42/v.ogg",
        "proxy_url": "https://media.example/42", "content_type": "audio/ogg"}, state=SimpleNamespace(http=None))
    request = discord_adapter.build_request(attachment, target=discord_adapter.Target(channel_id="9"),
                                            source_message_id=None, user_id="7", fetch=_no_fetch,
                                            sender_language="pt-BR")
    assert request.sender_language == "pt-BR"
