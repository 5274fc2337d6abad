"""The platform-free transcription core: what bots and adapters use, named in one place.

`TranscriptionService` (service.py) is the entry point. The values crossing its boundary are the
settings, the options, the media request, the transcript and the errors with their sentences. The
subpackages hold the parts a maintainer changes separately, each naming its own public API:
`chatscribe.core.engines` (models, engines, batching), `chatscribe.core.jobs` (journal, admission,
scheduler, runners), `chatscribe.core.delivery` (answers in chats) and `chatscribe.core.scaleout` (the
Redis protocol; it needs the `scaleout` extra, so it is not imported here, nor is PyTorch).
"""

from . import live, sentences
from .cache import TranscriptCache
from .codecs import (
    decode_failure,
    decode_options,
    decode_transcript,
    dumps_outcome,
    encode_failure,
    encode_options,
    encode_transcript,
    loads_failure,
    loads_transcript,
)
from .config import ENV_FILE, Settings, load
from .coverage import MIN_GAP_S, covered_mask, uncovered
from .errors import (
    Busy,
    CannotTranslate,
    ChatscribeError,
    ConfigError,
    DataDirUnavailable,
    DownloadFailed,
    LanguageNotOffered,
    MediaError,
    MediaTooLarge,
    MediaTooLong,
    ModelUnavailable,
    NoAudioTrack,
    NotReady,
    RecordedFailure,
    SetAside,
    SettingRefused,
    ShuttingDown,
    SpeakerOptionsRefused,
    StorageUnavailable,
    UnacceptedFormat,
    UnknownLanguage,
    UnreadableMedia,
)
from .i18n import REPLY_LANGUAGES, Sentence, joined, localize, reply_language
from .keys import TranscriptKey, content_hash, options_digest, transcript_key
from .languages import LANGUAGE_NAMES, code_or_name, language_name
from .live import *  # noqa: F403 -- core/live.py's __all__ names what it offers, once
from .media import ACCEPTED_FORMATS, SAMPLE_RATE, DecodedAudio, Fetch, MediaRequest, decode_audio, probe_duration
from .metrics import Metrics
from .options import MAX_KNOWN_SPEAKERS, SPEAKERS_MODES, KnownSpeaker, SpeakersMode, TranscribeOptions
from .preferences import Preferences
from .quality import FRAME_S, normalize, screen, speech_mask
from .retention import Forgotten
from .service import TranscriptionService
from .settings import KEYS, ConversationSettings, SettingChange, parse_setting, resolve_language
from .storage import storage_error
from .text import characters, split_text, utf16_units
from .transcript import (
    FORMATS,
    HALLUCINATION,
    LOW_CONFIDENCE,
    Gap,
    Markup,
    Segment,
    Transcript,
    Turn,
    Word,
    gap_note,
    labelled,
    render,
    render_srt,
    render_txt,
    render_vtt,
    speaker_name,
    speakers_of,
    turns,
)

__all__ = [
    # the table of every sentence a person reads (a module: `sentences.NO_SPEECH`, `sentences.progress(...)`)
    "sentences",
    # the bots' own words in the reader's language (core/i18n.py): a Sentence is its English str
    "REPLY_LANGUAGES",
    "Sentence",
    "joined",
    "localize",
    "reply_language",
    # the service and its settings
    "ENV_FILE",
    "Metrics",
    "Settings",
    "TranscriptionService",
    "load",
    # what a request is
    "ACCEPTED_FORMATS",
    "SAMPLE_RATE",
    "DecodedAudio",
    "Fetch",
    "MediaRequest",
    "TranscribeOptions",
    "KnownSpeaker",
    "SpeakersMode",
    "SPEAKERS_MODES",
    "MAX_KNOWN_SPEAKERS",
    "decode_audio",
    "probe_duration",
    # what comes back, and how it is rendered and split for a platform
    "FORMATS",
    "HALLUCINATION",
    "LOW_CONFIDENCE",
    "Gap",
    "Segment",
    "Transcript",
    "Word",
    "characters",
    "gap_note",
    "render",
    "render_srt",
    "render_txt",
    "render_vtt",
    # who said what (core/speakers labels it; these render it)
    "Markup",
    "Turn",
    "labelled",
    "speaker_name",
    "speakers_of",
    "turns",
    "split_text",
    "utf16_units",
    # live audio (the Realtime API): utterances cut from a PCM16 stream
    *live.__all__,
    # the quality pass and the coverage check
    "FRAME_S",
    "MIN_GAP_S",
    "covered_mask",
    "normalize",
    "screen",
    "speech_mask",
    "uncovered",
    # conversation settings and languages
    "KEYS",
    "LANGUAGE_NAMES",
    "ConversationSettings",
    "Preferences",
    "SettingChange",
    "code_or_name",
    "language_name",
    "parse_setting",
    "resolve_language",
    # stores: the cache key, the codecs, the cache, forgetting
    "Forgotten",
    "TranscriptCache",
    "TranscriptKey",
    "content_hash",
    "decode_failure",
    "decode_options",
    "decode_transcript",
    "dumps_outcome",
    "encode_failure",
    "encode_options",
    "encode_transcript",
    "loads_failure",
    "loads_transcript",
    "options_digest",
    "storage_error",
    "transcript_key",
    # errors: each carries the sentence a person reads
    "Busy",
    "CannotTranslate",
    "ChatscribeError",
    "ConfigError",
    "DataDirUnavailable",
    "DownloadFailed",
    "LanguageNotOffered",
    "MediaError",
    "MediaTooLarge",
    "MediaTooLong",
    "ModelUnavailable",
    "NoAudioTrack",
    "NotReady",
    "RecordedFailure",
    "SetAside",
    "SettingRefused",
    "SpeakerOptionsRefused",
    "ShuttingDown",
    "StorageUnavailable",
    "UnacceptedFormat",
    "UnknownLanguage",
    "UnreadableMedia",
]
