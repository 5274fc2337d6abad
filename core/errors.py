"""Errors a user can hit. Each carries the sentence shown to that user; adapters only render it.

No HTTP status codes or platform words here: the edges map these types to what their platform expects.
"""

from __future__ import annotations

from . import sentences
from .i18n import Sentence, joined


class ChatscribeError(Exception):
    """Base of every error whose message is meant for the person who sent the media."""

    code = "error"

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(detail or user_message)
        self.user_message = user_message
        self.detail = detail


class ConfigError(ChatscribeError):
    """A setting is missing or wrong; the message names the variable."""

    code = "config"


class UnknownLanguage(ChatscribeError):
    """A language Whisper does not know was asked for (a typo, or a name instead of a code)."""

    code = "unknown_language"

    def __init__(self, value: str) -> None:
        super().__init__(sentences.unknown_language(value))
        self.value = value


class LanguageNotOffered(ChatscribeError):
    """A language Whisper knows, but not one of CHATSCRIBE_LANGUAGES, the ones this service transcribes."""

    code = "language_not_offered"

    def __init__(self, value: str, offered: tuple[str, ...]) -> None:
        super().__init__(sentences.language_not_offered(value, offered))
        self.value = value
        self.offered = offered


class SettingRefused(ChatscribeError):
    """A conversation setting given a value it does not take; the setting stays as it was."""

    code = "setting_refused"


class SpeakerOptionsRefused(ChatscribeError):
    """Speaker options a request or setting gave that cannot be used (counts, known speakers, mode)."""

    code = "speaker_options"


class ModelUnavailable(ChatscribeError):
    """The configured model cannot be loaded (offline, not bundled, or not a model folder)."""

    code = "model_unavailable"


class ConverterMissing(ModelUnavailable):
    """A transformers checkpoint or LoRA adapter, but PyTorch, transformers or peft is not installed."""

    code = "converter_missing"

    def __init__(self, model: str, missing: str) -> None:
        super().__init__(sentences.converter_missing(model, missing))
        self.missing = missing


class NotAWhisperModel(ModelUnavailable):
    """CHATSCRIBE_MODEL names a folder, but nothing in it is a Whisper model chatscribe can use."""

    code = "not_whisper"

    def __init__(self, folder: object, why: str) -> None:
        super().__init__(sentences.not_a_whisper_model(str(folder), why))


class ModelTooLarge(ModelUnavailable):
    """Converting the checkpoint would need more memory than the machine has free."""

    code = "model_too_large"

    def __init__(self, model: str, need_bytes: int, free_bytes: int) -> None:
        super().__init__(sentences.model_too_large(model, need_bytes / 1e9, free_bytes / 1e9))
        self.need_bytes = need_bytes
        self.free_bytes = free_bytes


class CannotTranslate(ChatscribeError):
    """Translation asked of an English-only model (`tiny.en`, `base.en`, ...): it would only transcribe."""

    code = "cannot_translate"

    def __init__(self, model_id: str) -> None:
        model = model_id.split(":")[0]  # the name alone, without the engine settings (":int8:beam5:vad1")
        super().__init__(sentences.cannot_translate(model))
        self.model = model


class MediaError(ChatscribeError):
    """Something about the media itself stops it from being transcribed."""

    code = "media"


class UnreadableMedia(MediaError):
    code = "unreadable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            Sentence("I couldn't read that file: it isn't an audio or video file I can decode."), detail=detail
        )


class UnacceptedFormat(UnreadableMedia):
    """Not a container we open: random bytes, a playlist, an image, or a format outside the list."""

    def __init__(self, accepted: str, detail: str | None = None) -> None:
        MediaError.__init__(
            self, Sentence("I couldn't read that file: it isn't audio or video in a format I accept ({accepted}).",
                           accepted=accepted),
            detail=detail,
        )
        self.accepted = accepted


class NoAudioTrack(MediaError):
    code = "no_audio"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(Sentence("That file has no audio track to transcribe."), detail=detail)


class MediaTooLarge(MediaError):
    code = "too_large"

    def __init__(self, size_bytes: int | None, limit_bytes: int, *, hint: str = "") -> None:
        limit = f"{limit_bytes / 1_000_000:g}"
        message = (Sentence("That file is too large ({size} MB): the limit is {limit} MB.",
                            size=format(size_bytes / 1_000_000, ".1f"), limit=limit) if size_bytes
                   else Sentence("That file is too large: the limit is {limit} MB.", limit=limit))
        super().__init__(joined([message, hint]) if hint else message)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class MediaTooLong(MediaError):
    code = "too_long"

    def __init__(self, duration_s: float | None, limit_s: float) -> None:
        if duration_s:
            message = Sentence("That recording is too long ({length}): the limit is {limit}.",
                               length=_minutes(duration_s), limit=_minutes(limit_s))
        else:
            message = Sentence("That recording is too long: the limit is {limit}.", limit=_minutes(limit_s))
        super().__init__(message)
        self.duration_s = duration_s
        self.limit_s = limit_s


class SetAside(MediaError):
    """The process died each time this media was read or transcribed: it is not tried again."""

    code = "set_aside"

    def __init__(self, crashes: int) -> None:
        super().__init__(
            Sentence("This file stopped the transcriber each time it was tried, so I've set it aside. "
                     "Converting it to another format (for example MP3) and sending it again may help."),
            detail=f"the process died {crashes} times while reading or transcribing it",
        )


class DownloadFailed(MediaError):
    """The platform would not hand over the file (expired link, missing permission, network)."""

    code = "download_failed"


class Busy(ChatscribeError):
    """Back-pressure: the queue is full or the person sent too much too fast."""

    code = "busy"

    def __init__(self, retry_after_s: float, *, reason: str = sentences.BUSY_DEFAULT) -> None:
        super().__init__(sentences.busy(reason, retry_after_s))
        self.retry_after_s = retry_after_s


class StorageUnavailable(ChatscribeError):
    """The data dir cannot be written (disk full, read-only file system): nothing new can be journaled.

    Work already accepted keeps running; new work is refused with this sentence rather than accepted and
    then lost, and is taken again as soon as writes succeed.
    """

    code = "storage"

    def __init__(self, *, full: bool, what: str = "take new recordings", detail: str | None = None) -> None:
        settings = what == "save settings"  # the only other thing refused (core/preferences.py)
        if full:
            message = (Sentence("I can't save settings right now: my storage is full. Please try again later.")
                       if settings else
                       Sentence("I can't take new recordings right now: my storage is full. Please try again later."))
        else:
            message = (Sentence("I can't save settings right now: I can't write to my storage. "
                                "Please try again later.") if settings else
                       Sentence("I can't take new recordings right now: I can't write to my storage. "
                                "Please try again later."))
        super().__init__(message, detail=detail)
        self.full = full


class DataDirUnavailable(ChatscribeError):
    """At start: the data dir cannot be opened for writing (read-only file system, full disk, permissions).

    Said to the operator, not to a chat: the process does not start without its journal.
    """

    code = "data_dir"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"The data dir {path} cannot be used ({reason}): chatscribe keeps its job journal, transcript cache "
            "and settings there. Make it writable or free space and start again, or set CHATSCRIBE_DATA_DIR "
            "to another folder."
        )
        self.reason = reason


class NotReady(ChatscribeError):
    code = "not_ready"

    def __init__(self) -> None:
        super().__init__(Sentence("I'm still starting up (loading the model): please try again in a moment."))


class ShuttingDown(ChatscribeError):
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__(sentences.RESTARTING)


class RecordedFailure(ChatscribeError):
    """An error outcome read back from the journal or Redis (core/codecs.py): the original's code and sentence."""

    def __init__(self, code: str, user_message: str) -> None:
        super().__init__(user_message)
        self.code = code


def _minutes(seconds: float) -> Sentence:
    if seconds < 120:
        return Sentence("{seconds} s", seconds=format(seconds, ".0f"))
    if seconds < 7200:
        return Sentence("{minutes} min", minutes=format(seconds / 60, ".0f"))
    return Sentence("{hours} h", hours=format(seconds / 3600, ".1f"))
