"""Slack: event, slash command and shortcut payloads -> MediaRequest pieces; Transcript -> Slack messages.

Pure translation, no network: the bot hands in the download coroutine and sends what is rendered here.
Transcript text is escaped for mrkdwn (&, <, >) and sent with `verbatim` so it can never form a mention,
a link or `<!channel>`. A section holds at most 3000 characters and a message's sections together at most
9000, well under the ~13,000 characters at which Slack answers `msg_blocks_too_long`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from chatscribe.core import (
    ChatscribeError,
    ConversationSettings,
    Fetch,
    Markup,
    MediaRequest,
    Sentence,
    SettingChange,
    Transcript,
    gap_note,
    localize,
    parse_setting,
    render,
    render_txt,
    sentences,
    split_text,
)

PLATFORM = "slack"
SECTION_LIMIT = 3000
SECTIONS_PER_MESSAGE = 3
PREVIEW_CHARS = 1500
FALLBACK_CHARS = 300
NO_SPEECH = sentences.NO_SPEECH
UPLOAD_FORMATS = ("txt", "srt", "vtt")
MARKUP = Markup(escape=lambda text: text, label=lambda name: f"*{name}:*")
"""A speaker's turn starts with its name in bold; the text is escaped section by section when sent."""

# Slack's own names for media types, for files whose mimetype is generic.
_MEDIA_FILETYPES = frozenset({
    "aac", "aiff", "amr", "flac", "m4a", "m4v", "mkv", "mov", "mp3", "mp4", "mpg", "ogg", "opus", "wav",
    "webm", "wmv", "3gp", "avi", "flv", "mpeg", "wma",
})
_PERMALINK = re.compile(r"https?://[^\s/>|]+/archives/(?P<channel>[A-Z0-9]+)/p(?P<ts>\d{7,})(?P<query>\?[^\s>|]*)?")


# -- inbound ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SlackFile:
    id: str
    name: str
    mimetype: str
    filetype: str
    size: int | None
    url: str
    """url_private_download: fetched with the bot token as Bearer."""
    subtype: str | None = None

    @property
    def is_media(self) -> bool:
        """Audio or video by what Slack detected in the content; Slack clips are audio/mp4 or video/mp4."""
        if self.subtype in ("slack_audio", "slack_video"):
            return True
        if self.mimetype.startswith(("audio/", "video/")):
            return True
        return self.filetype.lower() in _MEDIA_FILETYPES

    @property
    def kind(self) -> str:
        if self.subtype == "slack_audio":
            return "voice"
        if self.subtype == "slack_video" or self.mimetype.startswith("video/"):
            return "video"
        return "audio" if self.is_media else "document"


@dataclass(frozen=True, slots=True)
class Target:
    """Where an answer goes: a thread in a channel, or an ephemeral message only `user` sees."""

    channel: str
    thread_ts: str | None
    user: str
    private: bool = False
    replies: str | None = None
    """The language of the bot's words in the answer (the bot's `reply_language`); None = English."""


@dataclass(frozen=True, slots=True)
class Permalink:
    channel: str
    ts: str
    thread_ts: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    action: Literal["transcribe", "setting", "settings", "forget", "help", "refused"]
    private: bool = False
    permalink: Permalink | None = None
    change: SettingChange | None = None
    """For `setting`: the parsed value to store (core/settings.py)."""
    problem: str | None = None
    """`help`: the text could not be understood, shown with the help text; `refused`: the one sentence
    naming what a setting accepts (the setting is not changed)."""


def parse_file(data: Mapping[str, Any]) -> SlackFile | None:
    """A file object from an event or API answer; None for tombstones and externally hosted files."""
    url = data.get("url_private_download") or data.get("url_private")
    if not data.get("id") or not url or data.get("mode") in ("tombstone", "external", "hidden_by_limit"):
        return None
    size = data.get("size")
    return SlackFile(
        id=str(data["id"]), name=str(data.get("name") or data.get("title") or data["id"]),
        mimetype=str(data.get("mimetype") or ""), filetype=str(data.get("filetype") or ""),
        size=int(size) if isinstance(size, int | float) else None, url=str(url),
        subtype=data.get("subtype"),
    )


def needs_lookup(data: Mapping[str, Any]) -> bool:
    """Slack sometimes sends a file as its id alone, to be read with files.info."""
    return bool(data.get("id")) and (data.get("file_access") == "check_file_info" or not data.get("mimetype"))


def message_files(message: Mapping[str, Any], *, media_only: bool = True) -> list[SlackFile]:
    files = [f for f in (parse_file(d) for d in message.get("files") or ()) if f is not None]
    return [f for f in files if f.is_media] if media_only else files


def thread_of(message: Mapping[str, Any]) -> str:
    """Replies go in the message's thread: its own ts starts one, a reply's thread_ts continues one."""
    return str(message.get("thread_ts") or message["ts"])


def is_from_bot(event: Mapping[str, Any], bot_user_id: str | None = None) -> bool:
    return bool(
        event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("bot_profile")
        or (bot_user_id and event.get("user") == bot_user_id)
    )


def is_new_share(event: Mapping[str, Any]) -> bool:
    """A message event that shares files now (edits, deletions and other subtypes are not)."""
    return event.get("subtype") in (None, "file_share", "thread_broadcast") and bool(event.get("files"))


def message_with_ts(messages: Iterable[Mapping[str, Any]], ts: str) -> Mapping[str, Any] | None:
    return next((m for m in messages if m.get("ts") == ts), None)


def latest_media_message(messages: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest message (conversations.history order: newest first) carrying audio or video."""
    return next((m for m in messages
                 if message_files(m) or any(needs_lookup(f) for f in m.get("files") or ())), None)


def share_of(info: Mapping[str, Any], channel: str) -> tuple[str, str] | None:
    """(message ts, thread ts) of a file's share in `channel`, from a files.info answer."""
    shares = info.get("shares") or {}
    for visibility in ("public", "private"):
        found = (shares.get(visibility) or {}).get(channel) or []
        if found:
            ts = str(found[0]["ts"])
            return ts, str(found[0].get("thread_ts") or ts)
    return None


def setting_changed(change: SettingChange, locale: str | None = None) -> str:
    if change.key == "auto":
        return localize(Sentence("Audio and video shared in this channel will now be transcribed automatically.")
                        if change.value == "on" else
                        Sentence("Automatic transcription is off in this channel; `/transcribe` still works."), locale)
    return escape(localize(change.confirmation, locale))


def describe_settings(settings: ConversationSettings, locale: str | None = None) -> str:
    """`/transcribe settings`: what is in force in this channel, for anyone in it."""
    heading = localize(Sentence("Settings in this channel"), locale)
    return f"*{heading}*\n" + "\n".join(escape(localize(line, locale)) for line in settings.lines())


NOT_A_MEMBER = Sentence("I can only transcribe messages from conversations you're in, and that link points to one "
                        "you aren't a member of.")
SETTINGS_NOT_ALLOWED = Sentence("Only workspace admins, this channel's creator and the people listed in "
                                "SLACK_SETTINGS_USERS can change chatscribe's settings here.")


def lookup_problem(error: str) -> Sentence:
    """The sentence for a Slack error met while looking something up for a command."""
    if error in ("not_in_channel", "channel_not_found"):
        return Sentence("I can't read that channel: invite me first (`/invite @chatscribe`).")
    if error in ("missing_scope", "no_permission"):
        return Sentence("I'm not allowed to look that up: the app needs the *_:history*, *_:read* and *users:read* "
                        "scopes; reinstall it from the manifest.")
    if error == "unexpected_answer":
        return Sentence("Slack didn't answer properly just now; please try again in a minute.")
    return Sentence("I couldn't look up that message; please try again.")


def nothing_found(explicit: bool) -> Sentence:
    if explicit:
        return Sentence("That message has no audio or video file to transcribe.")
    return Sentence("I found no recent message with audio or video in this channel.")


def accepted(files: list[SlackFile], *, private: bool) -> Sentence:
    names = ", ".join(f"`{escape(f.name)}`" for f in files)
    if private:
        return Sentence("Transcribing {names}: only you will see the text.", names=names)
    return Sentence("Transcribing {names}: the text will appear in its thread.", names=names)


def parse_permalink(text: str) -> Permalink | None:
    """https://team.slack.com/archives/C123/p1700000000123456[?thread_ts=…] -> channel, ts, thread."""
    match = _PERMALINK.search(text)
    if not match:
        return None
    digits = match["ts"]
    ts = f"{digits[:-6]}.{digits[-6:]}"
    thread = parse_qs(urlsplit(match["query"] or "").query).get("thread_ts", [None])[0]
    return Permalink(match["channel"], ts, thread if thread and thread != ts else None)


def parse_command(text: str, *, offered: tuple[str, ...] = ()) -> Command:
    """The words after `/transcribe`. `offered`: CHATSCRIBE_LANGUAGES, which a language setting is checked against."""
    words = text.split()
    private = bool(words) and words[0].lower() in ("private", "me")
    if private:
        words = words[1:]
    if not words:
        return Command("transcribe", private=private)
    head = words[0].lower()
    if head in ("help", "?"):
        return Command("help")
    if head in ("forget", "settings"):
        if len(words) > 1:
            return Command("help", problem=Sentence("`/transcribe {command}` takes nothing after it.", command=head))
        return Command("forget" if head == "forget" else "settings")
    if head in SETTING_WORDS:
        try:
            change = parse_setting(head, unescape(" ".join(words[1:])), offered=offered)
        except ChatscribeError as exc:
            return Command("refused", problem=exc.user_message)
        return Command("setting", change=change)
    link = parse_permalink(" ".join(words))
    if link is None:
        return Command("help", problem=Sentence("I didn't understand that. Give me a message link, or nothing."))
    return Command("transcribe", private=private, permalink=link)


SETTING_WORDS = frozenset({"language", "translate", "vocab", "vocabulary", "format", "timestamps", "speakers", "auto",
                           "replies"})


HELP = Sentence(
    "*/transcribe* transcribes the latest audio or video in this channel into its thread.\n"
    "*/transcribe <message link>* transcribes that message's files (use *Copy link* on a message).\n"
    "*/transcribe private …* sends the transcript only to you.\n"
    "*/transcribe language auto|<language>* sets the spoken language in this channel (a code such as `de` or "
    "a name such as `German`; `auto` detects it).\n"
    "*/transcribe translate on|off* answers in English whatever was spoken.\n"
    "*/transcribe vocab <terms>* lists names and terms to expect (nothing after it clears them).\n"
    "*/transcribe format txt|srt|vtt* picks the file format used for long transcripts.\n"
    "*/transcribe timestamps on|off* puts the time of each passage in the text.\n"
    "*/transcribe speakers on|off|auto* says who said what in recordings with several voices (auto: long "
    "ones only).\n"
    "*/transcribe auto on|off* turns automatic transcription of shared clips in this channel on or off.\n"
    "*/transcribe replies auto|<language>* sets the language of my replies here (`auto`: each person's Slack "
    "language, where I may read it).\n"
    "*/transcribe settings* shows this channel's settings; changing them is for workspace admins, the "
    "channel's creator and the people the operator listed.\n"
    "*/transcribe forget* deletes what chatscribe keeps about this channel: cached transcripts, settings and "
    "job records.\n"
    "Or use the *Transcribe* shortcut in a message's ⋯ menu."
)


def media_request(file: SlackFile, target: Target, *, message_ts: str, fetch: Fetch) -> MediaRequest:
    return MediaRequest(
        platform=PLATFORM, chat_id=target.channel, user_id=target.user, fetch=fetch, kind=file.kind,
        mime_type=file.mimetype or None, size_bytes=file.size, file_name=file.name,
        platform_file_id=file.id, reference=reference(file, target, message_ts=message_ts),
        replies=target.replies,
    )


def reference(file: SlackFile, target: Target, *, message_ts: str) -> Mapping[str, str]:
    return MappingProxyType({
        "channel": target.channel, "thread_ts": target.thread_ts or "", "user": target.user,
        "private": "1" if target.private else "", "file_id": file.id, "url": file.url,
        "message_ts": message_ts, "replies": target.replies or "",
    })


def target_of(reference: Mapping[str, str]) -> Target:
    return Target(reference["channel"], reference.get("thread_ts") or None, reference["user"],
                  private=bool(reference.get("private")), replies=reference.get("replies") or None)


# -- outbound -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SlackMessage:
    sections: tuple[str, ...]
    """mrkdwn, already escaped, each at most SECTION_LIMIT characters."""
    context: str = ""
    """A small grey line under the text (file name, length, notes); mrkdwn, already escaped."""

    @property
    def text(self) -> str:
        """The notification/fallback text Slack shows where blocks are not rendered."""
        first = self.sections[0] if self.sections else self.context
        return first if len(first) <= FALLBACK_CHARS else first[: FALLBACK_CHARS - 1].rstrip() + "…"

    def blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": s, "verbatim": True}} for s in self.sections
        ]
        if self.context:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": self.context,
                                                            "verbatim": True}]})
        return blocks


@dataclass(frozen=True, slots=True)
class SlackUpload:
    """The whole transcript as a file in the thread (files_upload_v2)."""

    filename: str
    content: str
    title: str


Part = SlackMessage | SlackUpload


def escape(text: str) -> str:
    """Slack's three control characters; nothing else needs escaping in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escaped_length(text: str) -> int:
    return len(escape(text))


def render_transcript(transcript: Transcript, *, file_name: str | None, max_parts: int,
                      upload_format: str = "txt", timestamps: bool = False,
                      locale: str | None = None) -> tuple[Part, ...]:
    """Messages with the text; past max_parts messages, a preview message plus the text as a file.

    `timestamps` (the channel's setting) starts each passage with its [mm:ss], in the messages and the .txt file;
    `locale` is the language of the bot's own words (the transcript stays as spoken).
    """
    gap = gap_note(transcript)
    gaps = localize(gap, locale) if gap else None
    missing: tuple[SlackMessage, ...] = (SlackMessage((escape(gaps),)),) if gaps else ()
    missing += ((SlackMessage((escape(localize(transcript.speaker_note, locale)),)),)
                if transcript.speaker_note else ())
    if not transcript.has_speech:
        return (SlackMessage((escape(gaps or localize(NO_SPEECH, locale)),),
                             context=_about(transcript, file_name, locale)),)
    text = render_txt(transcript, timestamps=timestamps, markup=MARKUP)
    chunks = split_text(text, SECTION_LIMIT * SECTIONS_PER_MESSAGE, _escaped_length)
    if len(chunks) <= max_parts:
        return tuple(
            SlackMessage(_sections(chunk),
                         context=_about(transcript, file_name, locale) if i == len(chunks) - 1 else "")
            for i, chunk in enumerate(chunks)
        ) + missing
    preview = split_text(text, PREVIEW_CHARS, _escaped_length)[0].rstrip() + " …"
    fmt = upload_format if upload_format in UPLOAD_FORMATS else "txt"
    stem = (file_name or "recording").rsplit(".", 1)[0] or "recording"
    content = render(transcript, fmt, timestamps=timestamps, marked=True)
    note = escape(localize(sentences.FULL_TRANSCRIPT_ATTACHED, locale))
    title = localize(Sentence("Transcript of {name}", name=file_name or stem), locale)
    return (
        SlackMessage((escape(preview),), context=f"{_about(transcript, file_name, locale)} · {note}"),
        SlackUpload(filename=f"{stem}.{fmt}", content=content, title=title),
        *missing,
    )


def render_error(error: ChatscribeError, *, file_name: str | None = None, locale: str | None = None) -> SlackMessage:
    context = escape(localize(Sentence("File: {name}", name=file_name), locale)) if file_name else ""
    return SlackMessage((escape(localize(error.user_message, locale)),), context=context)


def render_notice(text: str) -> SlackMessage:
    # A live status may hold more than one section holds (Slack caps a section at 3000 characters).
    return SlackMessage(_sections(text))


def _sections(chunk: str) -> tuple[str, ...]:
    return tuple(escape(part) for part in split_text(chunk, SECTION_LIMIT, _escaped_length))


def _about(transcript: Transcript, file_name: str | None, locale: str | None) -> str:
    about = Sentence("Transcript of {name}", name=file_name) if file_name else Sentence("Transcript")
    bits = [escape(localize(about, locale)), _clock(transcript.duration_s)]
    if transcript.language:
        bits.append(transcript.language)
    if transcript.task == "translate":
        bits.append(localize(Sentence("translated to English"), locale))
    if transcript.truncated:
        bits.append(escape(localize(sentences.TRUNCATED, locale)))
    if transcript.flagged:
        bits.append(escape(localize(sentences.DOUBTFUL, locale)))
    return " · ".join(bits)


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
