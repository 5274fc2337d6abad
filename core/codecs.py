"""How options, transcripts and outcomes are written down: in the journal, the cache and Redis alike.

Each codec turns a value into JSON-ready data and back. Readers accept what earlier versions wrote
(a field added later is optional), so an upgrade never makes a stored answer unreadable.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .errors import ChatscribeError, RecordedFailure
from .i18n import Sentence, from_json, to_json
from .options import KnownSpeaker, TranscribeOptions
from .transcript import Gap, Segment, Transcript, Word

Outcome = Transcript | ChatscribeError
"""What a job ends with: a transcript, or the error its sender is told."""


_SPEAKER_DEFAULTS = {"speakers": "off", "min_speakers": None, "max_speakers": None, "known_speakers": ()}
"""Speaker fields at these values are left out of the written form: options written before speakers
existed keep their digest (core/keys.py), so caches filled then still answer."""


def encode_options(options: TranscribeOptions) -> dict[str, Any]:
    data = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    data["expected_languages"] = list(options.expected_languages)
    for name, default in _SPEAKER_DEFAULTS.items():
        if data[name] == default:
            del data[name]
    if options.known_speakers:
        data["known_speakers"] = [{"name": k.name, "audio": base64.b64encode(k.audio).decode("ascii")}
                                  for k in options.known_speakers]
    if not options.language_hints:  # as the speaker fields: options written before hints keep their form
        del data["language_hints"]
    return data


def decode_options(data: Mapping[str, Any]) -> TranscribeOptions:
    values = dict(data)
    values["expected_languages"] = tuple(values.get("expected_languages") or ())
    values["known_speakers"] = tuple(KnownSpeaker(k["name"], base64.b64decode(k["audio"]))
                                     for k in values.get("known_speakers") or ())
    return TranscribeOptions(**values)


def encode_transcript(transcript: Transcript) -> dict[str, Any]:
    data = dataclasses.asdict(transcript)
    data.pop("dropped")  # what the quality pass removed stays with the run that made it
    data.pop("from_cache")  # a property of the reading, not of the transcript
    for segment in data["segments"]:
        segment["flags"] = sorted(segment["flags"])
    if transcript.speaker_note:  # as a failure's sentence: shown in its reader's language when read back
        data["speaker_note"] = to_json(transcript.speaker_note) or transcript.speaker_note
    return data


def decode_transcript(data: Mapping[str, Any]) -> Transcript:
    values = dict(data)
    segments = tuple(
        Segment(**{**s, "words": tuple(Word(**w) for w in s["words"]), "flags": frozenset(s["flags"]),
                   "tokens": tuple(s.get("tokens", ()))})  # tokens: absent in entries written before them
        for s in values.pop("segments")
    )
    gaps = tuple(Gap(**g) for g in values.pop("gaps", ()))  # absent in entries written before gaps existed
    values["speakers"] = tuple(values.get("speakers") or ())  # absent before speaker labels existed
    note = values.get("speaker_note")
    if isinstance(note, dict):
        values["speaker_note"] = from_json(note)
    elif note:  # an older entry's note is the English of a fixed sentence without values: looked up by it
        values["speaker_note"] = Sentence(note)
    return Transcript(segments=segments, gaps=gaps, **values)


def encode_failure(error: ChatscribeError) -> dict[str, str]:
    """An error outcome keeps its code and the sentence its sender is shown, not its type."""
    data: dict[str, Any] = {"code": error.code, "message": error.user_message}
    sentence = to_json(error.user_message)
    if sentence is not None:  # so that it is shown in its reader's language after a restart too
        data["sentence"] = sentence
    return data


def decode_failure(data: Mapping[str, Any]) -> RecordedFailure:
    sentence = data.get("sentence")  # absent in entries written before sentences were translated
    return RecordedFailure(data["code"], from_json(sentence) if sentence else data["message"])


def dumps_outcome(outcome: Outcome) -> str:
    """One outcome as JSON text (the journal's outcome column, Redis' t: and err: values)."""
    if isinstance(outcome, Transcript):
        return json.dumps(encode_transcript(outcome), ensure_ascii=False)
    return json.dumps(encode_failure(outcome))


def loads_transcript(body: str | bytes) -> Transcript:
    return decode_transcript(json.loads(body))


def loads_failure(body: str | bytes) -> RecordedFailure:
    return decode_failure(json.loads(body))
