"""The cache key of a transcript: which model, asked what, heard which bytes.

One key serves the local cache (core/cache.py), in-flight sharing in the service and the shared state in
Redis (core/scaleout/schema.py): a transcript made anywhere is found under the same key everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .codecs import encode_options
from .options import TranscribeOptions


@dataclass(frozen=True, slots=True)
class TranscriptKey:
    model_id: str
    """The engine and the settings that change its words (e.g. "base:int8:beam5:vad1")."""
    options_digest: str
    """options_digest() of what the person asked for."""
    content_hash: str
    """sha256 of the media bytes, hex."""

    @property
    def model_options(self) -> str:
        """The key without the content: one content has one transcript per model and options."""
        return f"{self.model_id}:{self.options_digest}"

    def __str__(self) -> str:
        # The form Redis keys and job messages carry; parse() reads it back.
        return f"{self.model_options}:{self.content_hash}"

    @classmethod
    def parse(cls, text: str) -> TranscriptKey:
        """The key str() wrote. The model id may hold colons; the digest and the hash never do."""
        model_id, options_digest, content = text.rsplit(":", 2)
        return cls(model_id, options_digest, content)


def transcript_key(model_id: str, options: TranscribeOptions, content_hash: str) -> TranscriptKey:
    """The one way a transcript's cache key is made."""
    return TranscriptKey(model_id, options_digest(options), content_hash)


def options_digest(options: TranscribeOptions) -> str:
    """A stable digest of everything the person asked for that changes the words."""
    written = encode_options(options)
    written.pop("language_hints", None)  # context, not a request: a repeat is answered whatever the chat spoke since
    if "known_speakers" in written:  # a reference clip counts by its bytes' hash, not the bytes themselves
        written["known_speakers"] = [{"name": k.name, "audio_sha256": hashlib.sha256(k.audio).hexdigest()}
                                     for k in options.known_speakers]
    payload = json.dumps(written, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def content_hash(data: bytes) -> str:
    """sha256 of the media bytes; slow for long recordings, so callers run it off the event loop."""
    return hashlib.sha256(data).hexdigest()
