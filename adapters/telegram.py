"""Telegram translation: Message -> MediaRequest pieces, Transcript -> Telegram messages, chat settings.

Pure functions over python-telegram-bot's types and the core's values: no network. The bot
(bots/telegram_bot.py) hands in the download coroutine and sends what these functions return.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType

from telegram import Message

from chatscribe.core import (
    ChatscribeError,
    ConversationSettings,
    Fetch,
    MediaRequest,
    MediaTooLarge,
    Sentence,
    Transcript,
    gap_note,
    joined,
    labelled,
    localize,
    render,
    sentences,
    split_text,
    utf16_units,
)

PLATFORM = "telegram"
MESSAGE_LIMIT = 4096
"""Telegram's limit for one message, in UTF-16 code units."""
CAPTION_LIMIT = 1024
PREVIEW_UNITS = 600
CLOUD_FILE_LIMIT = 20_000_000
"""getFile refuses bigger files unless the bot talks to a local Bot API server."""
LOCAL_FILE_LIMIT = 2_000_000_000
NO_SPEECH = sentences.NO_SPEECH
LOCAL_SERVER_HINT = Sentence(
    "Telegram only lets bots download files up to 20 MB; the bot's operator can raise this to 2000 MB "
    "by running a local Bot API server."
)

# -- inbound -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TelegramMedia:
    """The one transcribable attachment of a message."""

    kind: str
    file_id: str
    file_unique_id: str
    mime_type: str | None
    size_bytes: int | None
    duration_s: float | None
    file_name: str | None


def media_of(message: Message | None) -> TelegramMedia | None:
    """The voice note, audio, video note, video or audio/video document of a message, if any."""
    if message is None:
        return None
    with warnings.catch_warnings():  # PTB 22 warns on `duration` about its coming int -> timedelta change
        warnings.simplefilter("ignore")
        return _media_of(message)


def _media_of(message: Message) -> TelegramMedia | None:
    if message.voice:
        v = message.voice
        return _media("voice", v.file_id, v.file_unique_id, v.mime_type, v.file_size, v.duration, None)
    if message.audio:
        a = message.audio
        return _media("audio", a.file_id, a.file_unique_id, a.mime_type, a.file_size, a.duration, a.file_name)
    if message.video_note:
        n = message.video_note
        return _media("video_note", n.file_id, n.file_unique_id, "video/mp4", n.file_size, n.duration, None)
    if message.video:
        m = message.video
        return _media("video", m.file_id, m.file_unique_id, m.mime_type, m.file_size, m.duration, m.file_name)
    document = message.document
    if document and (document.mime_type or "").split("/")[0] in ("audio", "video"):
        return _media("document", document.file_id, document.file_unique_id, document.mime_type,
                      document.file_size, None, document.file_name)
    return None


def _media(kind: str, file_id: str, unique_id: str, mime: str | None, size: int | None, duration: object,
           name: str | None) -> TelegramMedia:
    # PTB 22 gives durations as int seconds or timedelta depending on PTB_TIMEDELTA.
    seconds = getattr(duration, "total_seconds", None)
    value = float(seconds()) if callable(seconds) else (float(duration) if duration else None)  # type: ignore[arg-type]
    return TelegramMedia(kind, file_id, unique_id, mime, size, value, name)


def reference(message: Message, media: TelegramMedia) -> dict[str, str]:
    """What is needed to download the file and answer again after a restart."""
    return {
        "chat_id": str(message.chat_id),
        "message_id": str(message.message_id),
        "file_id": media.file_id,
        "file_unique_id": media.file_unique_id,
    }


def media_request(message: Message, media: TelegramMedia, fetch: Fetch, *, user_id: int | None = None,
                  answer_to: Message | None = None, replies: str | None = None) -> MediaRequest:
    """`answer_to` is the message the answer replies to (the media message unless told otherwise);
    `replies` the language of the bot's words for it (`reply_language`)."""
    ref = reference(answer_to or message, media)
    return MediaRequest(
        platform=PLATFORM,
        chat_id=str(message.chat_id),
        user_id=str(user_id if user_id is not None else (message.from_user.id if message.from_user else 0)),
        fetch=fetch,
        kind=media.kind,
        mime_type=media.mime_type,
        size_bytes=media.size_bytes,
        duration_hint_s=media.duration_s,
        file_name=media.file_name,
        platform_file_id=media.file_unique_id,
        reference=MappingProxyType(ref),
        # The voice's own sender's app language: a hint for a short clip's language (core/language_choice.py).
        sender_language=message.from_user.language_code if message.from_user else None,
        replies=replies,
    )


def reply_language(message: Message, chat: ConversationSettings) -> str | None:
    """The language of the bot's words for this message: the chat's `replies` setting, else the language of
    the sender's Telegram app (`language_code`); None = English."""
    user = message.from_user
    return chat.replies_in(user.language_code if user else None)


def download_limit(max_file_bytes: int, *, local_mode: bool) -> int:
    return min(max_file_bytes, LOCAL_FILE_LIMIT if local_mode else CLOUD_FILE_LIMIT)


def size_error(size_bytes: int | None, max_file_bytes: int, *, local_mode: bool) -> MediaTooLarge | None:
    """The answer for a file too large to fetch, known from its declared size before any download."""
    limit = download_limit(max_file_bytes, local_mode=local_mode)
    if size_bytes is None or size_bytes <= limit:
        return None
    platform_bound = not local_mode and limit < max_file_bytes
    return MediaTooLarge(size_bytes, limit, hint=LOCAL_SERVER_HINT if platform_bound else "")


# -- chat settings -------------------------------------------------------------------------------

ChatSettings = ConversationSettings
"""A chat's settings are the core model (core/settings.py); the name stays for the renderers below."""
SETTING_COMMANDS = ("language", "translate", "format", "timestamps", "speakers", "vocab", "auto", "replies")
"""Each is `/<setting> <value>`, parsed by core.settings.parse_setting."""


def describe_settings(settings: ConversationSettings, *, group: bool) -> str:
    """`/settings`: automatic transcription only in groups (a private chat transcribes every note)."""
    return joined(settings.lines(show_auto=group), "\n")


# -- outbound ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingText:
    text: str


@dataclass(frozen=True, slots=True)
class OutgoingDocument:
    file_name: str
    data: bytes
    caption: str


Outgoing = OutgoingText | OutgoingDocument


def render_transcript(transcript: Transcript, chat: ConversationSettings, *, max_parts: int,
                      file_stem: str = "transcript", locale: str | None = None) -> list[Outgoing]:
    """The messages that answer with this transcript, in order.

    Plain text goes inline, split under Telegram's limit; when it would take more than `max_parts`
    messages, or the chat asked for subtitles, it goes as a file with a short preview so a chat is
    never flooded. `locale`: the language of the bot's own words around it (the transcript stays as spoken).
    """
    gaps = gap_note(transcript)
    gaps = localize(gaps, locale) if gaps else None
    if not transcript.has_speech:
        return [OutgoingText(gaps or localize(sentences.NO_SPEECH, locale))]
    notes = [OutgoingText(localize(sentences.TRUNCATED, locale))] if transcript.truncated else []
    notes += [OutgoingText(gaps)] if gaps else []
    notes += [OutgoingText(localize(transcript.speaker_note, locale))] if transcript.speaker_note else []
    doubtful = localize(sentences.DOUBTFUL, locale) if transcript.flagged else None
    text = render(transcript, "txt", timestamps=chat.timestamps)
    parts = split_text(text, MESSAGE_LIMIT, utf16_units)
    if chat.format == "text" and len(parts) <= max_parts:
        return [*_ending_with(parts, doubtful), *notes]
    extension = chat.file_extension
    body = render(transcript, extension, timestamps=chat.timestamps, marked=True)
    document = OutgoingDocument(
        file_name=f"{_safe_stem(file_stem)}.{extension}",
        data=body.encode("utf-8"),
        caption=localize(sentences.full_transcript_caption(len(transcript.text)), locale),
    )
    shown = text if labelled(transcript) else transcript.text  # who speaks first shows in the preview too
    return [*_ending_with([preview(shown)], doubtful), document, *notes]


def _ending_with(texts: list[str], note: str | None) -> list[Outgoing]:
    """The messages, the last one carrying `note` (the doubtful marker) when it fits, else a message of its own."""
    if note is None:
        return [OutgoingText(t) for t in texts]
    last = f"{texts[-1]}\n\n{note}"
    if utf16_units(last) <= MESSAGE_LIMIT:
        return [*(OutgoingText(t) for t in texts[:-1]), OutgoingText(last)]
    return [*(OutgoingText(t) for t in texts), OutgoingText(note)]


def preview(text: str, units: int = PREVIEW_UNITS) -> str:
    if utf16_units(text) <= units:
        return text
    head = split_text(text, units, utf16_units)[0].rstrip()
    return f"{head} …"


def _safe_stem(name: str) -> str:
    stem = PurePosixPath(name.replace("\\", "/")).stem
    cleaned = "".join(c if c.isalnum() or c in "-_ " else "_" for c in stem).strip()
    return cleaned[:60] or "transcript"


def error_text(error: ChatscribeError, locale: str | None = None) -> str:
    """The sentence for a chat: the error's user message, never its detail or a traceback."""
    return localize(error.user_message, locale)


HELP_PRIVATE = Sentence(
    "Send me a voice note, audio or video and I reply with its text.\n"
    "Settings: /language, /translate, /format, /timestamps, /speakers, /vocab, /replies; /settings shows them.\n"
    "/forget deletes what I keep about this chat (cached transcripts, settings, job records)."
)
HELP_GROUP = Sentence(
    "Reply /transcribe to a voice note, audio or video and I answer with its text.\n"
    "Admins: /auto on transcribes every voice note here; /settings shows this group's settings; "
    "/forget deletes what I keep about this group (cached transcripts, settings, job records)."
)
NOT_ALLOWED = Sentence("Sorry, this bot is private: it only works in the chats its operator allowed.")
NOTHING_TO_TRANSCRIBE = Sentence("Reply /transcribe to a voice note, audio or video message.")
PRIVACY_HINT = Sentence(
    "I only see the voice notes of a group when I'm one of its admins or my privacy mode is off "
    "(@BotFather → /setprivacy → Disable, then add me to the group again)."
)
ADMINS_ONLY = Sentence("Only the group's admins can change its settings.")
PRIVATE_AUTO = Sentence("In a private chat every voice note is transcribed already.")
