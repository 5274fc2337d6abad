"""The `transcription` session of OpenAI's Realtime API: what `session.update` may set, checked field by
field with a sentence for each mistake, and the session object sent back in `session.created/updated`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from chatscribe.core import INPUT_RATES, ChatscribeError, VadSettings, resolve_language


class EventError(Exception):
    """A client event that cannot be followed: becomes one `error` event; the session goes on."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


@dataclass(frozen=True, slots=True)
class LiveSession:
    """One connection's transcription settings."""

    id: str
    rate: int = 24_000
    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    vad: VadSettings | None = VadSettings()


def new_session() -> LiveSession:
    return LiveSession(id="sess_" + secrets.token_hex(12))


def describe(session: LiveSession) -> dict[str, Any]:
    """The session as OpenAI shows a RealtimeTranscriptionSessionCreateRequest."""
    vad = session.vad
    turn = None if vad is None else {
        "type": "server_vad", "threshold": vad.threshold, "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_duration_ms,
    }
    return {
        "type": "transcription",
        "id": session.id,
        "object": "realtime.transcription_session",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": session.rate},
            "transcription": {"model": session.model, "language": session.language, "prompt": session.prompt},
            "turn_detection": turn,
            "noise_reduction": None,
        }},
        "include": [],
    }


def update(session: LiveSession, body: Any, *, expected_languages: tuple[str, ...]) -> LiveSession:
    """`session` changed as the `session` field of a session.update asks; EventError names the bad field."""
    if not isinstance(body, dict):
        raise EventError("session.update needs a `session` object.", param="session")
    kind = body.get("type", "transcription")
    if kind != "transcription":
        raise EventError("This server offers transcription sessions only: set session.type to "
                         "\"transcription\".", param="session.type")
    audio = _object(body.get("audio", {}), "session.audio")
    given = _object(audio.get("input", {}), "session.audio.input")
    if "format" in given:
        session = replace(session, rate=_rate(given["format"]))
    if "transcription" in given:
        session = _transcription(session, given["transcription"], expected_languages)
    if "turn_detection" in given:
        session = replace(session, vad=_turn_detection(given["turn_detection"]))
    return session


def _rate(value: Any) -> int:
    fmt = _object(value, "session.audio.input.format")
    if fmt.get("type", "audio/pcm") != "audio/pcm":
        raise EventError("Only audio/pcm (16-bit little-endian mono) input is supported.",
                         param="session.audio.input.format.type")
    rate = fmt.get("rate", 24_000)
    if rate not in INPUT_RATES or isinstance(rate, bool):
        raise EventError("audio/pcm input must be at 24000 Hz or 16000 Hz.", param="session.audio.input.format.rate")
    return int(rate)


def _transcription(session: LiveSession, value: Any, expected: tuple[str, ...]) -> LiveSession:
    if value is None:
        return session  # OpenAI's "transcription off": a transcription session always transcribes
    given = _object(value, "session.audio.input.transcription")
    model = given.get("model", session.model)
    prompt = given.get("prompt", session.prompt)
    language = given.get("language", session.language)
    for name, field in (("model", model), ("prompt", prompt), ("language", language)):
        if field is not None and not isinstance(field, str):
            raise EventError(f"transcription.{name} must be a string.",
                             param=f"session.audio.input.transcription.{name}")
    if language:
        try:  # a code or a name, and one of CHATSCRIBE_LANGUAGES when set: as everywhere else
            language = resolve_language(language, expected)
        except ChatscribeError as exc:
            raise EventError(exc.user_message, param="session.audio.input.transcription.language") from None
    return replace(session, model=model or session.model, language=language or None, prompt=prompt or None)


def _turn_detection(value: Any) -> VadSettings | None:
    if value is None:
        return None
    given = _object(value, "session.audio.input.turn_detection")
    if given.get("type") != "server_vad":
        raise EventError("turn_detection takes type \"server_vad\", or null to commit the buffer yourself.",
                         param="session.audio.input.turn_detection.type")
    defaults = VadSettings()
    threshold = given.get("threshold", defaults.threshold)
    padding = given.get("prefix_padding_ms", defaults.prefix_padding_ms)
    silence = given.get("silence_duration_ms", defaults.silence_duration_ms)
    if not _number(threshold) or not 0.0 < threshold < 1.0:
        raise EventError("turn_detection.threshold must be a number between 0 and 1.",
                         param="session.audio.input.turn_detection.threshold")
    if not _number(padding) or not 0 <= padding <= 5000:
        raise EventError("turn_detection.prefix_padding_ms must be between 0 and 5000.",
                         param="session.audio.input.turn_detection.prefix_padding_ms")
    if not _number(silence) or not 100 <= silence <= 10_000:
        raise EventError("turn_detection.silence_duration_ms must be between 100 and 10000.",
                         param="session.audio.input.turn_detection.silence_duration_ms")
    return VadSettings(threshold=float(threshold), prefix_padding_ms=int(padding), silence_duration_ms=int(silence))


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EventError(f"{param} must be an object.", param=param)
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
