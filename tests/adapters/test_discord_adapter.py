"""The Discord adapter's pure translation: attachments to requests, outcomes to messages under 2000 characters."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import discord
import pytest

from chatscribe.adapters.discord import (
    MESSAGE_LIMIT,
    NO_SPEECH,
    CommandArgs,
    Source,
    Target,
    attachment_key,
    build_request,
    is_media,
    parse_command,
    render_answer,
    source_of,
    target_of,
    to_reference,
)
from chatscribe.core.errors import MediaTooLarge, UnreadableMedia
from chatscribe.core.transcript import Segment, Transcript, render


def transcript(*texts: str, truncated: bool = False) -> Transcript:
    segments = tuple(Segment(start=i * 5.0, end=i * 5.0 + 5, text=t) for i, t in enumerate(texts))
    return Transcript(segments=segments, language="en", language_probability=1.0,
                      duration_s=len(texts) * 5.0, model="tiny.en", truncated=truncated)


def attachment(filename: str, content_type: str | None, **extra: object) -> discord.Attachment:
    data = {"id": "42", "filename": filename, "size": 1234, "url": "https://cdn.example/42/" + filename,
            "proxy_url": "https://media.example/42", **extra}
    if content_type:
        data["content_type"] = content_type
    # An attachment keeps its state only to download itself, which the adapter never does.
    return discord.Attachment(data=data, state=SimpleNamespace(http=None))  # type: ignore[arg-type]


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


SENTENCES = [f"Sentence number {i} says something about the weather and the sea." for i in range(100)]


def test_long_text_is_split_under_the_limit_at_word_boundaries_with_nothing_lost() -> None:
    long = transcript(*SENTENCES)

    replies = render_answer(long, max_parts=10)

    assert len(replies) == 4
    assert all(len(r.content) <= MESSAGE_LIMIT for r in replies)
    assert all(r.file is None for r in replies)
    assert unescape("".join(r.content for r in replies)) == long.text
    assert all(r.content.endswith(". ") for r in replies[:-1]), "cut between sentences"


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt"])
def test_past_max_parts_the_full_text_is_attached_with_a_preview(fmt: str) -> None:
    long = transcript(*SENTENCES)

    (reply,) = render_answer(long, max_parts=3, file_format=fmt)

    assert reply.file is not None
    assert reply.file.name == f"transcript.{fmt}"
    assert reply.file.data.decode() == render(long, fmt)
    assert reply.content.startswith(SENTENCES[0])
    assert "attached" in reply.content
    assert len(reply.content) <= MESSAGE_LIMIT


def test_no_speech_and_errors_get_their_own_short_answer() -> None:
    assert render_answer(transcript(), max_parts=3)[0].content == NO_SPEECH
    (unreadable,) = render_answer(UnreadableMedia("EOF at byte 3"), max_parts=3)
    assert unreadable.content == UnreadableMedia().user_message
    assert "EOF" not in unreadable.content
    (too_large,) = render_answer(MediaTooLarge(150_000_000, 100_000_000), max_parts=3, label="big.mp4")
    assert too_large.content == "**big.mp4**\nThat file is too large (150.0 MB): the limit is 100 MB."


def test_markdown_in_a_transcript_is_shown_as_spoken() -> None:
    (reply,) = render_answer(transcript("Use *stars* and __under__ scores."), max_parts=3)
    assert reply.content == r"Use \*stars\* and \_\_under\_\_ scores."


def test_a_cut_short_recording_says_so() -> None:
    (reply,) = render_answer(transcript("Hello there.", truncated=True), max_parts=3)
    assert reply.content.startswith("Hello there.")
    assert "ended early" in reply.content


def test_media_is_recognized_by_type_or_name() -> None:
    assert is_media(attachment("voice-message.ogg", "audio/ogg"))
    assert is_media(attachment("clip.mov", "video/quicktime"))
    assert is_media(attachment("recording.m4a", None))
    assert is_media(attachment("RECORDING.WAV", "application/octet-stream"))
    assert not is_media(attachment("photo.png", "image/png"))
    assert not is_media(attachment("notes.txt", "text/plain; charset=utf-8"))


def test_a_repost_is_known_by_the_attachments_path_not_its_expiring_signature() -> None:
    signed = "https://cdn.discordapp.com/attachments/1/2/memo.m4a?ex=66b1&is=66af&hm=abc"
    resigned = "https://cdn.discordapp.com/attachments/1/2/memo.m4a?ex=77c2&is=77b0&hm=def"
    assert attachment_key(signed) == attachment_key(resigned) == "/attachments/1/2/memo.m4a"


def test_request_carries_what_a_restart_needs_as_json() -> None:
    voice = attachment("voice-message.ogg", "audio/ogg", duration_secs=7.5, waveform="AAAA")
    target = Target(channel_id="10", guild_id="20", reply_to="30", label="voice-message.ogg")

    async def fetch(max_bytes: int) -> bytes:
        return b""

    request = build_request(voice, target=target, source_message_id="30", user_id="40", fetch=fetch)

    assert (request.platform, request.chat_id, request.user_id) == ("discord", "10", "40")
    assert (request.kind, request.size_bytes, request.duration_hint_s) == ("voice", 1234, 7.5)
    assert request.platform_file_id == "/42/voice-message.ogg", "the CDN path: the same for a forward"
    assert json.loads(json.dumps(dict(request.reference))) == dict(request.reference)
    assert target_of(request.reference) == target
    assert source_of(request.reference) == Source("42", voice.url, "30")


def test_interaction_target_round_trips() -> None:
    target = Target(channel_id="1", application_id="2", interaction_token="tok", ephemeral=True)
    reference = to_reference(target, Source("3", "https://cdn.example/3"))
    assert target_of(reference) == target
    assert source_of(reference).message_id is None


@pytest.mark.parametrize(("content", "expected"), [
    ("!transcribe", CommandArgs()),
    ("  !Transcribe  ", CommandArgs()),
    ("!transcribe de", CommandArgs(language="de")),
    ("!transcribe translate", CommandArgs(translate=True)),
    ("!transcribe German translate", CommandArgs(language="German", translate=True)),
    ("!transcribe haitian creole", CommandArgs(language="haitian creole")),
    ("!transcribed", None),
    ("please !transcribe", None),
    ("", None),
])
def test_text_command_arguments(content: str, expected: CommandArgs | None) -> None:
    assert parse_command(content, "!") == expected


def test_another_prefix() -> None:
    assert parse_command("?transcribe", "?") == CommandArgs()
    assert parse_command("!transcribe", "?") is None
