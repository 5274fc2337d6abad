"""OpenAI-compatible speech-to-text: /v1/audio/transcriptions, /v1/audio/translations, /v1/models.

The official `openai` client pointed at this server works unchanged. Uploads are read part by part and
counted, so an oversized file is refused (413) as soon as it is known, never held whole in memory.
The work goes through TranscriptionService.transcribe, so the cache, the limits and the fair scheduler
are the same as the bots'.

`stream=true` answers with Server-Sent Events in OpenAI's schema: a `transcript.text.delta` for each
segment as Whisper decodes it (core/jobs/runner.py SegmentDone), then one `transcript.text.done` with the
whole text and token usage; the deltas joined are that text. The playground's progress (queue place,
share done) rides along as SSE comment lines (`: chatscribe.progress {...}`), which SSE clients, the
official `openai` client among them, skip.

Speaker labels (`response_format=diarized_json`, `speakers=on|auto`, known speakers): bots/openai_speakers.py.

`include[]=logprobs` (json and verbose_json, streamed or not) gives one entry per word: the word as
Whisper spelled it and the log of its probability, the mean of its tokens' probabilities in Whisper's
alignment pass (faster-whisper's word probabilities). Whisper's decoder only scores whole sequences, so
this is the finest honest figure it offers; asking for logprobs turns word timestamps on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from chatscribe.core import (
    ChatscribeError,
    KnownSpeaker,
    MediaRequest,
    NotReady,
    Segment,
    SpeakerOptionsRefused,
    TranscribeOptions,
    Transcript,
    gap_note,
    render_srt,
    render_txt,
    render_vtt,
    resolve_language,
)
from chatscribe.core.jobs import ProgressUpdate, SegmentDone

from .http_state import STATE, ServerState, caller_id, check_api_key
from .openai_errors import INTERNAL, ApiError, error_for, missing_key_response
from .openai_shapes import notices, token_usage, verbose_json, word_logprobs
from .openai_speakers import (
    DIARIZED,
    diarized_json,
    diarized_segments,
    known_speakers,
    speaker_fields,
)
from .openai_upload import Upload, check_declared_length, fetcher, read_upload

log = logging.getLogger(__name__)

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", DIARIZED)
STREAMED_FORMATS = ("json", "verbose_json", DIARIZED)
GENERIC_MODEL = "whisper-1"
"""OpenAI's model name, accepted (and listed) so that code written for OpenAI needs no change."""


UPLOAD_PATHS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
"""The routes whose body is media: they stream it with the upload limit, not the webhooks' one."""


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/audio/transcriptions", _transcriptions, expect_handler=_expect),
        web.post("/v1/audio/translations", _translations, expect_handler=_expect),
        web.get("/v1/models", _models),
        web.get("/v1/models/{model}", _model),
    ]


def _service(state: ServerState) -> Any:
    service = state.service
    if service is None or not getattr(service, "engine_ready", True):
        raise NotReady()
    return service


# -- handlers ------------------------------------------------------------------------------------


async def _transcriptions(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "transcribe")


async def _translations(request: web.Request) -> web.StreamResponse:
    return await _handle(request, "translate")


async def _handle(request: web.Request, task: str) -> web.StreamResponse:
    state = request.app[STATE]
    caller = caller_id(request)
    try:
        service = _service(state)
        check_declared_length(request, service.max_file_bytes)
        # The queue, the rate limit and the media budget answer before a byte of the upload is read; a
        # body of unknown length is counted at the limit until it has arrived.
        admission = await service.admit(platform="http", user_id=caller,
                                        size_bytes=request.content_length or service.max_file_bytes)
    except ChatscribeError as exc:
        return error_for(exc).response()
    try:
        upload = await read_upload(request, service.max_file_bytes)
        response_format = upload.fields.get("response_format", "json")
        offered = RESPONSE_FORMATS if task == "transcribe" else RESPONSE_FORMATS[:-1]  # translations: not diarized
        if response_format not in offered:
            raise ApiError(400, f"response_format must be one of {', '.join(offered)}.", param="response_format")
        options = _options(upload, task, state, response_format, await known_speakers(upload))
        stream = upload.fields.get("stream", "").lower() == "true"
        if stream and response_format not in STREAMED_FORMATS:
            raise ApiError(400, "stream=true works with response_format json, verbose_json or diarized_json.",
                           param="stream")
        logprobs = _logprobs_asked(upload, response_format)
        if logprobs:
            options = dataclasses.replace(options, word_timestamps=True)  # the words carry the probabilities
    except ApiError as exc:
        admission.close()
        return exc.response()
    except ChatscribeError as exc:
        admission.close()
        return error_for(exc).response()
    except BaseException:
        admission.close()
        raise
    media = MediaRequest(
        platform="http", chat_id=caller, user_id=caller, fetch=fetcher(upload.data), kind="audio",
        mime_type=upload.content_type, size_bytes=len(upload.data), file_name=upload.file_name,
    )
    words = "word" in upload.granularities
    if stream:
        return await _stream(request, service, media, options, response_format, words, admission, logprobs)
    try:
        transcript = await service.transcribe(media, options, admission=admission)
    except ChatscribeError as exc:
        return error_for(exc).response()
    except Exception:
        log.exception("transcription failed unexpectedly")
        return INTERNAL.response()
    return _render(transcript, response_format, options, words, logprobs)


async def _models(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    data = [_model_entry(name) for name in dict.fromkeys((settings.model, GENERIC_MODEL))]
    return web.json_response({"object": "list", "data": data})


async def _model(request: web.Request) -> web.Response:
    return web.json_response(_model_entry(request.match_info["model"]))


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "chatscribe"}


async def _expect(request: web.Request) -> web.Response | None:
    """Refuse `Expect: 100-continue` uploads (curl sends it) before the client sends the body."""
    state = request.app[STATE]
    if request.headers.get("Expect", "").lower() != "100-continue":
        return ApiError(417, "Unsupported Expect header.").response()
    if state.api_keys and check_api_key(request, state.api_keys) is None:
        return missing_key_response()
    if state.service is not None:
        try:
            check_declared_length(request, state.service.max_file_bytes)
        except ChatscribeError as exc:
            return error_for(exc).response()
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


def _options(upload: Upload, task: str, state: ServerState, response_format: str,
             known: tuple[KnownSpeaker, ...]) -> TranscribeOptions:
    fields = upload.fields
    language = None
    if task == "transcribe" and fields.get("language"):
        try:  # a code or a name, and one of CHATSCRIBE_LANGUAGES when set: the same check as in the chats
            language = resolve_language(fields["language"], state.settings.expected_languages)
        except ChatscribeError as exc:
            raise ApiError(400, exc.user_message, param="language") from None
    temperature = None
    if fields.get("temperature"):
        try:
            temperature = float(fields["temperature"])
        except ValueError:
            temperature = -1.0
        if not 0.0 <= temperature <= 1.0:
            raise ApiError(400, "temperature must be a number between 0 and 1.", param="temperature")
    unknown = set(upload.granularities) - {"word", "segment"}
    if unknown:
        raise ApiError(400, "timestamp_granularities[] takes 'word' and/or 'segment'.",
                       param="timestamp_granularities")
    speakers = speaker_fields(upload, response_format)
    try:
        return TranscribeOptions(
            language=language,
            task="translate" if task == "translate" else "transcribe",
            vocabulary=fields.get("prompt") or None,
            word_timestamps="word" in upload.granularities,
            expected_languages=state.settings.expected_languages if language is None else (),
            # OpenAI's 0 means "start at 0 and raise it when decoding fails", which is our default schedule.
            temperature=temperature or None,
            known_speakers=known,
            **speakers,
        )
    except SpeakerOptionsRefused as exc:  # counts out of range or the wrong way round, or unusable known speakers
        counted = (speakers["min_speakers"], speakers["max_speakers"]) != (None, None)
        raise ApiError(400, exc.user_message, param="min_speakers" if counted else "known_speaker_names") from None


def _logprobs_asked(upload: Upload, response_format: str) -> bool:
    include = upload.fields.get("include[]", "")
    if include and include != "logprobs":
        raise ApiError(400, "include[] takes 'logprobs'.", param="include")
    if include and response_format not in ("json", "verbose_json"):
        raise ApiError(400, "include[]=logprobs works with response_format json or verbose_json.",
                       param="include")
    return bool(include)


# -- answering ------------------------------------------------------------------------------------


def _render(transcript: Transcript, fmt: str, options: TranscribeOptions, words: bool,
            logprobs: bool = False) -> web.Response:
    if fmt == "text":
        note = gap_note(transcript)  # speech that could not be transcribed is never left out silently
        notes = [f"[{n}]" for n in (note, transcript.speaker_note) if n]
        text = "\n\n".join(part for part in (render_txt(transcript), *notes) if part)  # turns, when labelled
        return web.Response(text=text, content_type="text/plain")
    if fmt == "srt":
        return web.Response(text=render_srt(transcript), content_type="text/plain")
    if fmt == "vtt":
        return web.Response(text=render_vtt(transcript), content_type="text/vtt")
    body = _body(transcript, fmt, options, words)
    if logprobs:
        body["logprobs"] = word_logprobs(transcript.segments)
    return web.json_response(body, dumps=_dumps)


def _body(transcript: Transcript, fmt: str, options: TranscribeOptions, words: bool) -> dict[str, Any]:
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration_s)}
    if fmt == DIARIZED:
        known = [k.name for k in options.known_speakers]
        return diarized_json(transcript, known) | notices(transcript) | {"usage": usage}
    if fmt != "verbose_json":
        return {"text": transcript.text, **notices(transcript), "usage": usage}
    return verbose_json(transcript, options, words) | notices(transcript) | {"usage": usage}


# -- streaming ------------------------------------------------------------------------------------


class _Deltas:
    """The text sent so far, so that the deltas joined are exactly the done event's text."""

    def __init__(self, logprobs: bool, *, text_deltas: bool = True) -> None:
        self.logprobs = logprobs
        self.text_deltas = text_deltas
        self.sent = ""
        self.segments = 0

    def segment(self, segment: Segment) -> dict[str, Any] | None:
        """The delta for one decoded segment (None when it holds no text, or no deltas are sent)."""
        self.segments += 1
        text = segment.text.strip()
        if not text or not self.text_deltas:
            return None
        return self._delta((" " if self.sent else "") + text, [segment])

    def rest(self, transcript: Transcript) -> dict[str, Any] | None:
        """What the final text has beyond the deltas sent (all of it for an answer from the cache)."""
        final = transcript.text
        rest = final[len(self.sent):]
        if not final.startswith(self.sent) or (self.sent and rest and not rest.startswith(" ")):
            # The coverage check put a passage it decoded again between segments already sent: the done
            # event's text, the whole transcript, is then the one to keep.
            log.info("streamed text differs from the final transcript; the done event carries the final one")
            return None
        return self._delta(rest, transcript.segments[self.segments:]) if rest else None

    def _delta(self, text: str, segments: Sequence[Segment]) -> dict[str, Any]:
        self.sent += text
        event: dict[str, Any] = {"type": "transcript.text.delta", "delta": text}
        if self.logprobs:
            event["logprobs"] = word_logprobs(segments)
        return event


async def _stream(
    request: web.Request, service: Any, media: MediaRequest, options: TranscribeOptions, fmt: str, words: bool,
    admission: Any, logprobs: bool,
) -> web.StreamResponse:
    updates: asyncio.Queue[ProgressUpdate | SegmentDone] = asyncio.Queue()
    work = asyncio.ensure_future(service.transcribe(media, options, progress=updates.put_nowait,
                                                    admission=admission, segments=updates.put_nowait))
    # If the page goes away the work still finishes (and is cached); its outcome is then nobody's.
    work.add_done_callback(lambda task: task.cancelled() or task.exception())
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    # diarized_json streams segment events once the speaker step has labelled them, no text deltas before.
    deltas = _Deltas(logprobs, text_deltas=fmt != DIARIZED)
    try:
        while not work.done():
            getter = asyncio.ensure_future(updates.get())
            await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await _send(response, deltas, getter.result())
            else:
                getter.cancel()
        while not updates.empty():  # segments decoded just before the transcript was handed back
            await _send(response, deltas, updates.get_nowait())
        for event in _outcome_events(work, deltas, fmt, options, words):
            await _event(response, event)
        await response.write_eof()
    except ConnectionResetError:
        log.debug("the client left before the transcript was ready")
    return response


async def _send(response: web.StreamResponse, deltas: _Deltas, item: ProgressUpdate | SegmentDone) -> None:
    if isinstance(item, SegmentDone):
        event = deltas.segment(item.segment)
        if event is not None:
            await _event(response, event)
    else:  # a comment line: SSE clients skip it, the playground reads it
        await response.write(f": chatscribe.progress {_dumps(_progress_event(item))}\n\n".encode())


def _outcome_events(work: asyncio.Future[Transcript], deltas: _Deltas, fmt: str, options: TranscribeOptions,
                    words: bool) -> list[dict[str, Any]]:
    try:
        transcript = work.result()
    except ChatscribeError as exc:
        return [{"type": "error", **error_for(exc).body()}]
    except Exception:
        log.exception("transcription failed unexpectedly")
        return [{"type": "error", **INTERNAL.body()}]
    if fmt == DIARIZED:
        done = {"type": "transcript.text.done", "text": transcript.text, **notices(transcript),
                "usage": token_usage(transcript)}
        return [*diarized_segments(transcript, [k.name for k in options.known_speakers]), done]
    rest = deltas.rest(transcript)
    done = {"type": "transcript.text.done", **_body(transcript, fmt, options, words),
            "usage": token_usage(transcript)}
    if deltas.logprobs:
        done["logprobs"] = word_logprobs(transcript.segments)
    return [rest, done] if rest is not None else [done]


def _progress_event(update: ProgressUpdate) -> dict[str, Any]:
    return {"type": "chatscribe.progress", "stage": update.stage, "position": update.position,
            "fraction": round(update.fraction, 3),
            "eta_s": None if update.eta_s is None else round(update.eta_s, 1)}


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {_dumps(payload)}\n\n".encode())


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)
