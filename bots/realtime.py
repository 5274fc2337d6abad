"""Live transcription over WebSocket: `/v1/realtime?intent=transcription` speaks OpenAI's Realtime
transcription protocol, so `client.realtime.connect(...)` of the official client works unchanged.

The audio of each committed utterance (by the client, or by the server's VAD in core/live.py) becomes a
WAV that goes through TranscriptionService.transcribe like an upload: the same model, quality pass,
limits and metrics. Mistakes in client events are answered with OpenAI's `error` event and the session
goes on; what cannot go on (too many mistakes, the idle timeout, the maximum length) is closed cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from chatscribe.core import (
    ChatscribeError,
    LiveAudio,
    MediaRequest,
    SpeechStarted,
    SpeechStopped,
    TranscribeOptions,
    pcm16_wav,
)
from chatscribe.core.jobs import SegmentDone

from .http_state import STATE, ServerState, caller_id
from .openai_errors import error_for
from .openai_upload import fetcher
from .realtime_session import EventError, LiveSession, describe, new_session, update

log = logging.getLogger(__name__)

PATH = "/v1/realtime"
SUBPROTOCOL = "realtime"
MAX_MISTAKES = 20
"""Client errors a session answers before it closes: a client this broken is not going to recover."""
MIN_COMMIT_MS = 100
"""OpenAI refuses to commit less than 100 ms of audio."""
CHECK_EVERY_S = 1.0
"""How often a quiet session looks at its timers and whether the server is shutting down."""


def routes() -> list[web.RouteDef]:
    return [web.get(PATH, _realtime)]


async def _realtime(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc.lower() != request.host.lower():
        # A page from another site must not use a browser on this machine to reach the API.
        raise web.HTTPForbidden(text="Cross-origin WebSocket connections are not accepted.")
    limit = int(state.settings.realtime_max_event_kb * 1024)
    ws = web.WebSocketResponse(protocols=_protocols(request), max_msg_size=2 * limit + 65_536, heartbeat=30)
    await ws.prepare(request)
    session = Session(ws, state, caller_id(request), limit)
    try:
        await session.run(intent=request.query.get("intent", ""))
    except ConnectionResetError:
        log.debug("a realtime client went away")
    finally:
        await session.stop()
    return ws


def _protocols(request: web.Request) -> tuple[str, ...]:
    """The subprotocol to answer with: browsers fail a handshake that picks none of those they offered."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if SUBPROTOCOL in offered:
        return (SUBPROTOCOL,)
    return tuple(p for p in offered if p.startswith("openai-insecure-api-key."))[:1]


@dataclass(frozen=True, slots=True)
class Utterance:
    item_id: str
    pcm: bytes
    session: LiveSession


class Session:
    """One live connection: reads client events, keeps the input buffer, transcribes utterances in order."""

    def __init__(self, ws: web.WebSocketResponse, state: ServerState, caller: str, limit: int) -> None:
        self.ws = ws
        self.state = state
        self.caller = caller
        self.limit = limit
        self.config = new_session()
        self.audio = LiveAudio(rate=self.config.rate, vad=self.config.vad)
        self.item_id = _item_id()
        self.previous_item: str | None = None
        self.mistakes = 0
        self._send_lock = asyncio.Lock()
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue()
        self._busy = False
        self._worker: asyncio.Task[None] | None = None

    async def run(self, *, intent: str) -> None:
        settings = self.state.settings
        if intent != "transcription":
            await self.fatal("This server offers transcription sessions only: connect with ?intent=transcription.",
                             code="unsupported_intent", close=WSCloseCode.POLICY_VIOLATION)
            return
        if self.state.service is None or not getattr(self.state.service, "engine_ready", True):
            await self.fatal("The model is still loading; try again in a moment.", code="not_ready",
                             close=WSCloseCode.TRY_AGAIN_LATER)
            return
        self._worker = asyncio.create_task(self._transcribe_in_order())
        await self.send({"type": "session.created", "session": describe(self.config)})
        idle_s = settings.realtime_idle_timeout_s
        deadline = time.monotonic() + settings.realtime_max_session_s
        heard = time.monotonic()
        while not self.ws.closed:
            now = time.monotonic()
            if self._working():
                heard = now  # a client waiting for its words is not idle
            if now >= deadline:
                await self.fatal(f"The session reached its maximum length ({settings.realtime_max_session_s:g} s); "
                                 "open a new one to go on.", code="session_expired", close=WSCloseCode.OK)
                return
            if now - heard >= idle_s:
                await self.fatal(f"No events for {idle_s:g} s: the session was closed.", code="idle_timeout",
                                 close=WSCloseCode.OK)
                return
            if self.state.service is None or self.state.service.closing:
                await self.fatal("The server is shutting down; connect again in a moment.", code="shutting_down",
                                 close=WSCloseCode.GOING_AWAY)
                return
            try:
                msg = await self.ws.receive(timeout=min(deadline - now, idle_s - (now - heard), CHECK_EVERY_S))
            except TimeoutError:
                continue
            heard = time.monotonic()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type == WSMsgType.ERROR:  # e.g. a frame over max_msg_size: aiohttp closes with 1009
                log.debug("realtime connection error: %s", self.ws.exception())
                return
            await self._handle(msg)
            if self.mistakes >= MAX_MISTAKES:
                await self.fatal("Too many invalid events: the session was closed.", code="too_many_errors",
                                 close=WSCloseCode.POLICY_VIOLATION)
                return

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if not self.ws.closed:
            await self.ws.close()

    def _working(self) -> bool:
        return self._busy or not self._queue.empty()

    # -- client events --------------------------------------------------------------------------------

    async def _handle(self, msg: Any) -> None:
        event_id = None
        try:
            if msg.type != WSMsgType.TEXT:
                raise EventError("Events are JSON text messages.", code="invalid_event")
            if len(msg.data) > self.limit:
                raise EventError(f"The event is larger than {self.limit // 1024} KB; send audio in smaller "
                                 "pieces (100 ms is typical).", code="event_too_large")
            try:
                event = json.loads(msg.data)
            except ValueError:
                raise EventError("The event is not valid JSON.", code="invalid_json") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise EventError("An event is a JSON object with a string `type`.", code="invalid_event",
                                 param="type")
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            await self._dispatch(event)
        except EventError as exc:
            self.mistakes += 1
            await self.error(exc.message, code=exc.code, param=exc.param, event_id=event_id)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("session.update", "transcription_session.update"):
            await self._update(event.get("session"))
        elif kind == "input_audio_buffer.append":
            await self._append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            self.audio.clear()
            await self.send({"type": "input_audio_buffer.cleared"})
        else:
            raise EventError(f"Unknown event type {kind[:80]!r}: a transcription session takes session.update "
                             "and input_audio_buffer.append, .commit and .clear.", code="unknown_event", param="type")

    async def _update(self, body: Any) -> None:
        config = update(self.config, body, expected_languages=self.state.settings.expected_languages)
        if (config.rate, config.vad) != (self.config.rate, self.config.vad):
            # A new format or turn detection starts a new buffer: old samples would be misread.
            self.audio = LiveAudio(rate=config.rate, vad=config.vad)
        self.config = config
        await self.send({"type": "session.updated", "session": describe(config)})

    async def _append(self, audio: Any) -> None:
        if not isinstance(audio, str) or not audio:
            raise EventError("input_audio_buffer.append needs `audio`: base64 PCM16.", param="audio")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("`audio` is not valid base64.", code="invalid_audio", param="audio") from None
        if len(pcm) % 2:
            raise EventError("`audio` must be 16-bit PCM: an even number of bytes.", code="invalid_audio",
                             param="audio")
        if self.audio.vad is None and self.audio.full:
            raise EventError("The input buffer is full: commit it before sending more audio.",
                             code="input_audio_buffer_full")
        for happened in await asyncio.to_thread(self.audio.feed, pcm):
            if isinstance(happened, SpeechStarted):
                await self.send({"type": "input_audio_buffer.speech_started", "item_id": self.item_id,
                                 "audio_start_ms": happened.audio_start_ms})
            elif isinstance(happened, SpeechStopped):
                await self.send({"type": "input_audio_buffer.speech_stopped", "item_id": self.item_id,
                                 "audio_end_ms": happened.audio_end_ms})
                await self._committed(happened.audio)

    async def _commit(self) -> None:
        if self.audio.buffered_ms < MIN_COMMIT_MS:
            raise EventError(f"The buffer holds {self.audio.buffered_ms} ms of audio; commit needs at least "
                             f"{MIN_COMMIT_MS} ms.", code="input_audio_buffer_commit_empty")
        await self._committed(self.audio.commit())

    async def _committed(self, pcm: bytes) -> None:
        item_id, self.item_id = self.item_id, _item_id()
        await self.send({"type": "input_audio_buffer.committed", "item_id": item_id,
                         "previous_item_id": self.previous_item})
        self.previous_item = item_id
        self._queue.put_nowait(Utterance(item_id, pcm, self.config))

    # -- transcription --------------------------------------------------------------------------------

    async def _transcribe_in_order(self) -> None:
        while True:
            utterance = await self._queue.get()
            self._busy = True
            try:
                await self._transcribe(utterance)
            finally:
                self._busy = False

    async def _transcribe(self, utterance: Utterance) -> None:
        service = self.state.service
        assert service is not None
        wav = pcm16_wav(utterance.pcm, utterance.session.rate)
        media = MediaRequest(platform="http", chat_id=self.caller, user_id=self.caller, fetch=fetcher(wav),
                             kind="audio", mime_type="audio/wav", size_bytes=len(wav), file_name="live.wav")
        config = utterance.session
        # Only the client's prompt goes along: the session's words so far, tried as context, made Whisper
        # copy their style and repeat them over the next utterance (bench/bench_live.py).
        options = TranscribeOptions(
            language=config.language, vocabulary=config.prompt,
            expected_languages=self.state.settings.expected_languages if config.language is None else (),
        )
        base = {"item_id": utterance.item_id, "content_index": 0}
        sent: list[str] = []  # the text already sent as deltas
        sending: list[asyncio.Task[None]] = []

        def decoded(done: SegmentDone) -> None:  # on the loop, in decoding order, while the rest is decoded
            text = done.segment.text.strip()
            if text:
                delta = (" " if sent else "") + text
                sent.append(delta)
                sending.append(asyncio.ensure_future(self.send(
                    {"type": "conversation.item.input_audio_transcription.delta", **base, "delta": delta})))

        try:
            transcript = await service.transcribe(media, options, segments=decoded)
        except ChatscribeError as exc:
            api = error_for(exc)
            await self.send({"type": "conversation.item.input_audio_transcription.failed", **base,
                             "error": {"type": api.type, "code": api.code, "message": api.message, "param": None}})
            return
        except Exception:
            log.exception("live transcription failed unexpectedly")
            await self.send({"type": "conversation.item.input_audio_transcription.failed", **base,
                             "error": {"type": "server_error", "code": None, "param": None,
                                       "message": "Something went wrong while transcribing that audio."}})
            return
        finally:
            await asyncio.gather(*sending)  # asyncio.Lock is fair: they went out in the order they were made
        rest = _rest(transcript.text, "".join(sent))
        if rest:  # a cached or batched answer (no segments on the way), or a passage the quality pass added
            await self.send({"type": "conversation.item.input_audio_transcription.delta", **base, "delta": rest})
        seconds = round(len(utterance.pcm) / 2 / utterance.session.rate, 3)
        await self.send({"type": "conversation.item.input_audio_transcription.completed", **base,
                         "transcript": transcript.text, "usage": {"type": "duration", "seconds": seconds}})

    # -- server events --------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        payload = {"event_id": "event_" + secrets.token_hex(12), **event}
        async with self._send_lock:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_str(json.dumps(payload, ensure_ascii=False))

    async def error(self, message: str, *, code: str, param: str | None = None, event_id: str | None = None,
                    kind: str = "invalid_request_error") -> None:
        await self.send({"type": "error", "error": {"type": kind, "code": code, "message": message,
                                                    "param": param, "event_id": event_id}})

    async def fatal(self, message: str, *, code: str, close: WSCloseCode) -> None:
        await self.error(message, code=code)
        await self.ws.close(code=close, message=message[:120].encode())


def _rest(text: str, sent: str) -> str:
    """What the deltas still have to add so that, joined, they are `text` (when they are its start)."""
    if text.startswith(sent):
        return text[len(sent):]
    return ""  # the final text differs from what was sent: `completed` is the authority (rare)


def _item_id() -> str:
    return "item_" + secrets.token_hex(12)


__all__ = ["PATH", "routes"]
