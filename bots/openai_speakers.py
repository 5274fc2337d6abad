"""Speaker labels in the OpenAI-compatible API: the request's speaker fields, and OpenAI's diarized shapes.

`response_format=diarized_json` answers OpenAI's TranscriptionDiarized: `text`, `duration`, `task`,
`segments` of `{id, start, end, speaker, text, type: "transcript.text.segment"}` and `usage`. That format
asks for diarization, so it turns speaker labels on, and every segment carries a speaker even when only one
was heard ("A"). With `stream=true` the segments come as `transcript.text.segment` events once the speaker
step has labelled them (a label is only known once the whole recording is heard), then the done event.

`known_speaker_names[]` with `known_speaker_references[]` (data URLs of 2–10 s clips) name the voices that
match them. Each clip is decoded here, only as the formats the service accepts, to refuse a wrong one with
a sentence before any work starts; the speaker step decodes it again when it compares voices.
chatscribe's own `speakers=on|auto|off`, `min_speakers` and `max_speakers` work with every format.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import string
from collections.abc import Iterable
from typing import Any

from chatscribe.core import (
    SPEAKERS_MODES,
    ChatscribeError,
    KnownSpeaker,
    Segment,
    Transcript,
    decode_audio,
    sentences,
    speakers_of,
)

from .openai_errors import ApiError
from .openai_upload import Upload

DIARIZED = "diarized_json"
MIN_REFERENCE_S = 2.0
MAX_REFERENCE_S = 10.0
_SLACK_S = 0.1
"""Containers round their durations: a clip said to be 10 s may decode to a few samples more."""
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*);base64,(?P<payload>.*)", re.DOTALL)
_SINGLE_VOICE = "A"
"""The label diarized_json gives every segment of a recording where one voice (or none told apart) was heard."""


def speaker_fields(upload: Upload, response_format: str) -> dict[str, Any]:
    """TranscribeOptions' speakers, min_speakers and max_speakers from the form (400 for a wrong value)."""
    fields = upload.fields
    mode = fields.get("speakers", "").strip().lower() or "off"
    if mode not in SPEAKERS_MODES:
        raise ApiError(400, str(sentences.SPEAKER_MODE_CHOICES), param="speakers")
    if response_format == DIARIZED or upload.known_names or upload.known_references:
        mode = "on"  # diarized_json, or voices to name, is a request for labels
    counts = {name: _count(fields.get(name), name) for name in ("min_speakers", "max_speakers")}
    return {"speakers": mode, **counts}


def _count(typed: str | None, name: str) -> int | None:
    if not typed:
        return None
    try:
        return int(typed)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number of speakers.", param=name) from None


async def known_speakers(upload: Upload) -> tuple[KnownSpeaker, ...]:
    """The named voices, each clip checked to be 2–10 s of audio in an accepted format."""
    names, references = upload.known_names, upload.known_references
    if len(names) != len(references):
        raise ApiError(400, "Give one known_speaker_references[] entry for each known_speaker_names[] entry, "
                       f"in the same order (got {len(names)} names and {len(references)} references).",
                       param="known_speaker_references")
    known = []
    for name, reference in zip(names, references, strict=True):
        clip = _clip_of(name, reference)
        await asyncio.to_thread(_check_clip, name, clip)
        known.append(KnownSpeaker(name, clip))
    return tuple(known)


def _clip_of(name: str, reference: str) -> bytes:
    match = _DATA_URL.fullmatch(reference.strip())
    if match is None:
        raise ApiError(400, f"The reference for “{name[:40]}” must be a data URL of an audio clip "
                       "(data:audio/wav;base64,...).", param="known_speaker_references")
    try:
        return base64.b64decode(re.sub(r"\s+", "", match["payload"]), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"The reference for “{name[:40]}” is not valid base64.",
                       param="known_speaker_references") from None


def _check_clip(name: str, clip: bytes) -> None:
    """Decoded as any upload is (only the accepted containers); 2–10 s long."""
    try:
        seconds = decode_audio(clip, max_duration_s=MAX_REFERENCE_S + _SLACK_S).duration_s
    except ChatscribeError as exc:
        raise ApiError(400, f"The reference for “{name[:40]}”: {exc.user_message}",
                       param="known_speaker_references") from None
    if not MIN_REFERENCE_S - _SLACK_S <= seconds <= MAX_REFERENCE_S + _SLACK_S:
        raise ApiError(400, f"The reference for “{name[:40]}” is {seconds:.1f} s long: a known speaker's clip must "
                       f"be {MIN_REFERENCE_S:g}–{MAX_REFERENCE_S:g} s.", param="known_speaker_references")


# -- answering -------------------------------------------------------------------------------------------


def openai_labels(transcript: Transcript, known: Iterable[str] = ()) -> dict[str, str]:
    """diarized_json's speaker names: a known speaker's own name, else A, B, … in order of first turn (a
    two-channel call's "Left" and "Right" too: OpenAI's clients expect letters there)."""
    names = set(known)
    letters = iter(string.ascii_uppercase)
    return {label: label if label in names else next(letters, label) for label in transcript.speakers}


def diarized_segments(transcript: Transcript, known: Iterable[str] = ()) -> list[dict[str, Any]]:
    """OpenAI's diarized segments (also the stream's segment events), one per spoken segment, in time order."""
    speaker_of = speakers_of(transcript)
    shown = openai_labels(transcript, known)
    spoken = [s for s in transcript.segments if s.text.strip()]
    return [_segment(index, s, shown.get(speaker_of.get(id(s), ""), s.speaker or _SINGLE_VOICE))
            for index, s in enumerate(spoken)]


def _segment(index: int, segment: Segment, speaker: str) -> dict[str, Any]:
    return {"type": "transcript.text.segment", "id": f"seg_{index}", "start": round(segment.start, 3),
            "end": round(segment.end, 3), "speaker": speaker, "text": segment.text.strip()}


def diarized_json(transcript: Transcript, known: Iterable[str] = ()) -> dict[str, Any]:
    """TranscriptionDiarized, without its usage (the caller adds the same usage as the other formats)."""
    return {"task": "transcribe", "duration": round(transcript.duration_s, 3), "text": transcript.text,
            "segments": diarized_segments(transcript, known)}

