"""Discord translation: attachments to MediaRequests, transcripts and errors to Discord messages.

Pure functions: the bot hands in discord.py objects and a download coroutine, and gets back values.
Where an answer goes (a reply in a channel, or an interaction follow-up) travels in the request's
reference as strings, so a job journaled before a restart can still be answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

import discord
from discord.utils import escape_markdown

from chatscribe.core import (
    KEYS,
    ChatscribeError,
    ConversationSettings,
    Fetch,
    Markup,
    MediaRequest,
    Sentence,
    Transcript,
    characters,
    gap_note,
    localize,
    render,
    render_txt,
    sentences,
    split_text,
)

PLATFORM = "discord"
MESSAGE_LIMIT = 2000
"""Discord's limit on a message's content, in characters."""
PREVIEW_LIMIT = 1500
NO_SPEECH = sentences.NO_SPEECH
NOTHING_FOUND = Sentence("I found no audio or video to transcribe: attach a file, reply to a message that has "
                         "one, or use the command right after one.")
FileFormat = Literal["txt", "srt", "vtt"]
FILE_FORMATS: tuple[FileFormat, ...] = ("txt", "srt", "vtt")
MARKUP = Markup(escape=escape_markdown, label=lambda name: f"**{escape_markdown(name)}:**")
"""A speaker's turn starts with its name in bold; the words are markdown-escaped."""

MEDIA_EXTENSIONS = frozenset({
    ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wav", ".flac", ".wma", ".amr", ".weba",
    ".webm", ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".3gp", ".caf", ".aiff", ".aif",
})


@dataclass(frozen=True, slots=True)
class Target:
    """Where an answer goes: a reply in a channel, or the follow-up of an interaction."""

    channel_id: str
    guild_id: str | None = None
    reply_to: str | None = None
    """The message the answer replies to (without pinging its author)."""
    application_id: str | None = None
    interaction_token: str | None = None
    """Set for slash and context-menu commands: the answer is a follow-up (valid 15 minutes)."""
    ephemeral: bool = False
    label: str | None = None
    """The file's name, shown when one message held several files."""
    replies: str | None = None
    """The language of the bot's words in the answer (`reply_language`); None = English."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where the media is: its URL, and the message that holds it (to refresh an expired URL)."""

    attachment_id: str
    url: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    content: str
    file: OutgoingFile | None = None


@dataclass(frozen=True, slots=True)
class CommandArgs:
    """`!transcribe [language] [translate]`: the words after the command, not yet validated."""

    language: str | None = None
    translate: bool = False


# -- inbound -----------------------------------------------------------------------------------------


def parse_command(content: str, prefix: str) -> CommandArgs | None:
    """The text command's arguments; None when the message is not `{prefix}transcribe`."""
    words = content.split()
    if not words or words[0].lower() != f"{prefix}transcribe":
        return None
    rest = [word for word in words[1:] if word.lower() != "translate"]
    return CommandArgs(language=" ".join(rest) or None, translate=len(rest) < len(words) - 1)


def is_media(attachment: discord.Attachment) -> bool:
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type.startswith(("audio/", "video/")):
        return True
    return PurePosixPath(attachment.filename.lower()).suffix in MEDIA_EXTENSIONS


def media_attachments(message: discord.Message) -> list[discord.Attachment]:
    return [a for a in message.attachments if is_media(a)]


def is_voice_message(message: discord.Message) -> bool:
    return message.flags.voice and bool(message.attachments)


def kind_of(attachment: discord.Attachment, *, voice: bool = False) -> str:
    if voice or attachment.is_voice_message():
        return "voice"
    content_type = (attachment.content_type or "").lower()
    if content_type.startswith("video/"):
        return "video"
    if content_type.startswith("audio/"):
        return "audio"
    return "document"


def labelled(attachments: Iterable[discord.Attachment]) -> list[tuple[discord.Attachment, str | None]]:
    """Pairs each attachment with the label its answer carries: its name, when there are several."""
    items = list(attachments)
    return [(a, a.filename if len(items) > 1 else None) for a in items]


def build_request(
    attachment: discord.Attachment, *, target: Target, source_message_id: str | None, user_id: str,
    fetch: Fetch, voice: bool = False, sender_language: str | None = None,
) -> MediaRequest:
    """`sender_language`: the Discord locale of whoever asked ("de", "pt-BR"), a hint for the clip's language."""
    source = Source(str(attachment.id), attachment.url, source_message_id)
    return MediaRequest(
        platform=PLATFORM,
        chat_id=target.channel_id,
        user_id=user_id,
        fetch=fetch,
        kind=kind_of(attachment, voice=voice),
        mime_type=attachment.content_type,
        size_bytes=attachment.size,
        duration_hint_s=attachment.duration,
        file_name=attachment.filename,
        platform_file_id=attachment_key(attachment.url),
        reference=to_reference(target, source),
        sender_language=sender_language,
        replies=target.replies,
    )


def attachment_key(url: str) -> str:
    """What stays the same when a file is posted again: its CDN path, without the signature that expires.

    A forwarded message, or a file re-posted from its link, gets a new attachment id but keeps the path
    (`/attachments/<channel>/<attachment>/<name>`), so the transcript is found without downloading it.
    """
    return urlsplit(url).path


def reply_language(settings: ConversationSettings, locale: object | None) -> str | None:
    """The language of the bot's words: the conversation's `replies` setting, else `locale` (an interaction's
    locale, or the server's preferred locale for a message: discord.Locale values such as "de", "pt-BR")."""
    return settings.replies_in(str(locale) if locale is not None else None)


def describe_settings(settings: ConversationSettings, *, channel_keys: set[str], locale: str | None = None) -> str:
    """`/chatscribe settings`: the settings in force here, marking those this channel sets for itself."""
    lines = [escape_markdown(localize(line, locale)) for line in settings.lines()]
    own = [key for key in KEYS if key in channel_keys]
    note = ("\n*" + localize(Sentence("This channel sets {keys} itself; the rest are the server's.",
                                       keys=", ".join(own)), locale) + "*") if own else ""
    return f"**{localize(Sentence('Settings in this channel'), locale)}**\n" + "\n".join(lines) + note


def to_reference(target: Target, source: Source) -> Mapping[str, str]:
    values = {
        "channel_id": target.channel_id, "guild_id": target.guild_id, "reply_to": target.reply_to,
        "application_id": target.application_id, "interaction_token": target.interaction_token,
        "ephemeral": "1" if target.ephemeral else None, "label": target.label, "replies": target.replies,
        "attachment_id": source.attachment_id, "url": source.url, "message_id": source.message_id,
    }
    return MappingProxyType({k: v for k, v in values.items() if v is not None})


def target_of(reference: Mapping[str, str]) -> Target:
    return Target(
        channel_id=reference["channel_id"], guild_id=reference.get("guild_id"),
        reply_to=reference.get("reply_to"), application_id=reference.get("application_id"),
        interaction_token=reference.get("interaction_token"), ephemeral=reference.get("ephemeral") == "1",
        label=reference.get("label"), replies=reference.get("replies"),
    )


def source_of(reference: Mapping[str, str]) -> Source:
    return Source(reference["attachment_id"], reference["url"], reference.get("message_id"))


# -- outbound ----------------------------------------------------------------------------------------


def render_answer(
    outcome: Transcript | ChatscribeError, *, max_parts: int, file_format: str = "txt", label: str | None = None,
    timestamps: bool = False, locale: str | None = None,
) -> list[Reply]:
    """The messages that answer one file: the text in parts under 2000 characters, or a file and a preview.

    `timestamps` (the conversation's setting) starts each passage with its [mm:ss], in the text and a .txt file;
    `locale` is the language of the bot's own words (the transcript stays as spoken).
    """
    heading = f"**{escape_markdown(label)}**\n" if label else ""
    if isinstance(outcome, ChatscribeError):
        return [Reply(heading + localize(outcome.user_message, locale))]
    gaps = gap_note(outcome)
    if not outcome.has_speech:
        return [Reply(heading + escape_markdown(localize(gaps or NO_SPEECH, locale)))]
    body = heading + render_txt(outcome, timestamps=timestamps, markup=MARKUP)
    notes = [sentences.TRUNCATED] if outcome.truncated else []
    notes += [sentences.DOUBTFUL] if outcome.flagged else []
    notes += [gaps] if gaps else []
    notes += [outcome.speaker_note] if outcome.speaker_note else []
    body += "".join(f"\n\n*({escape_markdown(localize(note, locale))})*" for note in notes)
    parts = split_text(body, MESSAGE_LIMIT, characters)
    if len(parts) <= max_parts:
        return [Reply(part) for part in parts]
    return [_as_file(outcome, body, file_format, timestamps, locale)]


def _as_file(transcript: Transcript, body: str, file_format: str, timestamps: bool, locale: str | None) -> Reply:
    fmt = file_format if file_format in FILE_FORMATS else "txt"
    preview = split_text(body, PREVIEW_LIMIT, characters)[0].rstrip()
    data = render(transcript, fmt, timestamps=timestamps, marked=True).encode("utf-8")
    attached = localize(sentences.FULL_TRANSCRIPT_ATTACHED, locale)
    return Reply(f"{preview} …\n\n*{attached}*", OutgoingFile(f"transcript.{fmt}", data))


__all__ = [
    "FILE_FORMATS", "MESSAGE_LIMIT", "NO_SPEECH", "NOTHING_FOUND", "CommandArgs", "FileFormat", "OutgoingFile",
    "Reply", "Source", "Target", "attachment_key", "build_request", "describe_settings",
    "is_media", "is_voice_message", "kind_of", "labelled", "reply_language",
    "media_attachments", "parse_command", "render_answer", "source_of", "target_of", "to_reference",
]
