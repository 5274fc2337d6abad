"""The Telegram adapter's pure translation: messages to media requests, transcripts to messages, settings."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Message

from chatscribe.adapters import telegram as adapter
from chatscribe.core import sentences
from chatscribe.core.errors import MediaTooLarge, NoAudioTrack
from chatscribe.core.text import utf16_units
from chatscribe.core.transcript import Segment, Transcript

CHAT = {"id": 42, "type": "private", "first_name": "Ada"}
USER = {"id": 7, "is_bot": False, "first_name": "Ada"}
FILE = {"file_id": "fid", "file_unique_id": "uid", "file_size": 1234}


def message(**content: Any) -> Message:
    return Message.de_json({"message_id": 5, "date": 0, "chat": CHAT, "from": USER, **content}, None)


async def _never(limit: int) -> bytes:
    raise AssertionError("adapters never download")


@pytest.mark.parametrize(("content", "kind", "mime"), [
    ({"voice": {**FILE, "duration": 3, "mime_type": "audio/ogg"}}, "voice", "audio/ogg"),
    ({"audio": {**FILE, "duration": 3, "mime_type": "audio/mpeg", "file_name": "a.mp3"}}, "audio", "audio/mpeg"),
    ({"video_note": {**FILE, "duration": 3, "length": 240}}, "video_note", "video/mp4"),
    ({"video": {**FILE, "duration": 3, "width": 1, "height": 1, "mime_type": "video/mp4"}}, "video", "video/mp4"),
    ({"document": {**FILE, "mime_type": "audio/x-wav", "file_name": "memo.wav"}}, "document", "audio/x-wav"),
    ({"document": {**FILE, "mime_type": "video/webm", "file_name": "clip.webm"}}, "document", "video/webm"),
])
def test_every_transcribable_attachment_becomes_a_media_request(
    content: dict[str, Any], kind: str, mime: str
) -> None:
    msg = message(**content)
    media = adapter.media_of(msg)
    assert media is not None
    request = adapter.media_request(msg, media, _never)
    assert (request.platform, request.kind, request.mime_type) == ("telegram", kind, mime)
    assert (request.chat_id, request.user_id, request.size_bytes) == ("42", "7", 1234)
    assert request.platform_file_id == "uid"
    assert dict(request.reference) == {"chat_id": "42", "message_id": "5", "file_id": "fid",
                                       "file_unique_id": "uid"}


@pytest.mark.parametrize("content", [
    {"text": "hello"},
    {"document": {**FILE, "mime_type": "application/pdf", "file_name": "a.pdf"}},
    {"photo": [{**FILE, "width": 1, "height": 1}]},
])
def test_other_messages_are_not_media(content: dict[str, Any]) -> None:
    assert adapter.media_of(message(**content)) is None


def test_voice_duration_is_a_hint_in_seconds() -> None:
    media = adapter.media_of(message(voice={**FILE, "duration": 61}))
    assert media is not None
    assert media.duration_s == 61.0


def _transcript(*texts: str, truncated: bool = False) -> Transcript:
    segments = tuple(Segment(start=i * 2.0, end=i * 2.0 + 2.0, text=" " + t) for i, t in enumerate(texts))
    return Transcript(segments=segments, language="en", language_probability=1.0,
                      duration_s=len(texts) * 2.0, model="tiny.en", truncated=truncated)


def test_short_transcript_is_one_message() -> None:
    parts = adapter.render_transcript(_transcript("Hello there."), adapter.ChatSettings(), max_parts=3)
    assert parts == [adapter.OutgoingText("Hello there.")]


def test_no_speech_is_said_plainly() -> None:
    parts = adapter.render_transcript(_transcript(), adapter.ChatSettings(), max_parts=3)
    assert parts == [adapter.OutgoingText("No speech detected.")]


def test_long_transcript_splits_under_telegram_limit_counting_utf16() -> None:
    # Each emoji is two UTF-16 units: counting characters would overshoot Telegram's limit.
    transcript = _transcript(*(f"Line {i} 😀😀😀 ask not what your country can do for you." for i in range(300)))
    parts = adapter.render_transcript(transcript, adapter.ChatSettings(), max_parts=5)
    texts = [p.text for p in parts if isinstance(p, adapter.OutgoingText)]
    assert len(texts) == len(parts) > 1
    assert all(utf16_units(t) <= adapter.MESSAGE_LIMIT for t in texts)
    assert max(utf16_units(t) for t in texts) > 3000, "parts are filled, not tiny"
    assert "".join(texts) == transcript.text


def test_past_max_parts_the_transcript_comes_as_a_file_with_a_preview() -> None:
    transcript = _transcript(*(f"Sentence number {i} of a long talk." for i in range(2000)))
    parts = adapter.render_transcript(transcript, adapter.ChatSettings(), max_parts=3, file_stem="talk.ogg")
    preview, document = parts
    assert isinstance(preview, adapter.OutgoingText)
    assert isinstance(document, adapter.OutgoingDocument)
    assert preview.text.endswith("…")
    assert utf16_units(preview.text) <= adapter.PREVIEW_UNITS + 2
    assert document.file_name == "talk.txt"
    assert document.data.decode() == transcript.text
    assert len(document.caption) <= adapter.CAPTION_LIMIT


def test_subtitle_format_always_comes_as_a_file() -> None:
    chat = adapter.ChatSettings(format="srt")
    _, document = adapter.render_transcript(_transcript("Hello.", "World."), chat, max_parts=3)
    assert isinstance(document, adapter.OutgoingDocument)
    assert document.file_name == "transcript.srt"
    assert document.data.decode().startswith("1\n00:00:00,000 --> 00:00:02,000\nHello.")


def test_timestamps_setting_marks_the_text() -> None:
    chat = adapter.ChatSettings(timestamps=True)
    [part] = adapter.render_transcript(_transcript("Hello.", "World."), chat, max_parts=3)
    assert part == adapter.OutgoingText("[00:00] Hello.\n[00:02] World.")


def test_truncated_media_is_mentioned_after_the_text() -> None:
    parts = adapter.render_transcript(_transcript("Hello.", truncated=True), adapter.ChatSettings(), max_parts=3)
    assert parts == [adapter.OutgoingText("Hello."), adapter.OutgoingText(sentences.TRUNCATED)]


def test_cloud_size_limit_mentions_the_local_bot_api_server() -> None:
    error = adapter.size_error(25_000_000, 100_000_000, local_mode=False)
    assert isinstance(error, MediaTooLarge)
    assert "20 MB" in error.user_message
    assert "local Bot API server" in error.user_message
    assert adapter.size_error(19_000_000, 100_000_000, local_mode=False) is None
    assert adapter.size_error(25_000_000, 100_000_000, local_mode=True) is None
    local = adapter.size_error(150_000_000, 100_000_000, local_mode=True)
    assert local is not None
    assert "100 MB" in local.user_message
    assert "Bot API" not in local.user_message


def test_errors_show_only_their_sentence() -> None:
    error = NoAudioTrack(detail="streams: ['video'] at /tmp/secret/path")
    assert adapter.error_text(error) == "That file has no audio track to transcribe."


def test_settings_show_automatic_transcription_in_groups_only() -> None:
    chat = adapter.ChatSettings.from_stored({"format": "srt", "auto": "on"})
    assert "Automatic transcription: on" in adapter.describe_settings(chat, group=True)
    assert "Automatic transcription" not in adapter.describe_settings(chat, group=False)

