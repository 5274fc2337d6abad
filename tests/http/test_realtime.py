"""Live transcription over WebSocket: the official `openai` client's realtime connection against the real
server and the real tiny.en model, fed real speech at 24 kHz in 100 ms pieces."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from tests.audio_tools import pcm16 as audio_pcm16
from tests.http.conftest import API_KEY, Running, running_server
from tests.wer import wer

pytest.importorskip("websockets", reason="the openai client's realtime support needs `websockets`")

CHUNK_S = 0.1
TRANSCRIPTION_SESSION: dict[str, Any] = {
    "type": "transcription",
    "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": "whisper-1", "language": "en"},
        # JFK pauses for about a second between phrases: a longer silence makes the quote one utterance.
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 1200},
    }},
}


def pcm16(path: Path, rate: int = 24000) -> bytes:
    return audio_pcm16(path, rate)


def chunks(pcm: bytes, rate: int = 24000) -> list[str]:
    step = int(rate * CHUNK_S) * 2
    return [base64.b64encode(pcm[i:i + step]).decode() for i in range(0, len(pcm), step)]


def silence(seconds: float, rate: int = 24000) -> bytes:
    return bytes(int(seconds * rate) * 2)


async def next_event(connection: Any, want: Callable[[Any], bool], timeout: float = 60.0) -> Any:
    """The first server event `want` accepts (the ones before it are dropped)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await connection.recv()
            if want(event):
                return event


async def events_until(connection: Any, last: str, timeout: float = 60.0) -> list[Any]:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            event = await connection.recv()
            seen.append(event)
            if event.type == last:
                return seen


@pytest.fixture
def jfk_reference(audio_dir: Path) -> str:
    return str(json.loads((audio_dir / "references.json").read_text())["jfk.flac"]["text"])


def connect(server: Running, api_key: str = API_KEY) -> Any:
    return server.client(api_key).realtime.connect(extra_query={"intent": "transcription"}, max_retries=0)


async def test_server_vad_transcribes_speech_as_it_is_spoken(server: Running, audio_dir: Path,
                                                             jfk_reference: str) -> None:
    async with connect(server) as connection:
        created = await connection.recv()
        assert created.type == "session.created"
        await connection.session.update(session=TRANSCRIPTION_SESSION)
        updated = await next_event(connection, lambda e: e.type == "session.updated")
        assert updated.session.audio.input.turn_detection.silence_duration_ms == 1200
        for piece in chunks(pcm16(audio_dir / "jfk.flac") + silence(1.5)):
            await connection.input_audio_buffer.append(audio=piece)
        events = await events_until(connection, "conversation.item.input_audio_transcription.completed")
    kinds = [e.type for e in events]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped")
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed")
    completed = events[-1]
    deltas = [e.delta for e in events if e.type == "conversation.item.input_audio_transcription.delta"]
    assert deltas, "words arrive as deltas before the completed event"
    assert "".join(deltas) == completed.transcript
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    assert completed.item_id == committed.item_id
    assert wer(jfk_reference, completed.transcript) <= 0.10, completed.transcript
    assert kinds.count("conversation.item.input_audio_transcription.completed") == 1


async def test_silence_alone_gives_no_words(server: Running) -> None:
    async with connect(server) as connection:
        await connection.session.update(session=TRANSCRIPTION_SESSION)
        await next_event(connection, lambda e: e.type == "session.updated")
        for piece in chunks(silence(3.0)):
            await connection.input_audio_buffer.append(audio=piece)
        # Server VAD hears no speech; committing the silence by hand must not invent any either.
        await connection.input_audio_buffer.commit()
        events = await events_until(connection, "conversation.item.input_audio_transcription.completed")
    assert "input_audio_buffer.speech_started" not in [e.type for e in events]
    assert events[-1].transcript.strip() == ""


async def test_mistakes_get_error_events_and_the_server_goes_on(server: Running, audio_dir: Path) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    too_big = base64.b64encode(bytes(1100 * 1024)).decode()  # over CHATSCRIBE_REALTIME_MAX_EVENT_KB=1024
    mistakes = [
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 44100}}}}},
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "threshold": 7}}}}},
        {"type": "input_audio_buffer.append", "audio": "not base64 at all!"},
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"odd").decode()},
        {"type": "input_audio_buffer.append", "audio": too_big},
        {"type": "conversation.item.create"},
        {"type": "input_audio_buffer.commit"},  # nothing buffered
    ]
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        assert json.loads((await ws.receive(timeout=30)).data)["type"] == "session.created"
        await ws.send_str("{not json")
        for mistake in mistakes:
            await ws.send_str(json.dumps(mistake))
        errors = []
        for _ in range(len(mistakes) + 1):
            event = json.loads((await ws.receive(timeout=30)).data)
            assert event["type"] == "error", event
            errors.append(event["error"])
        assert not ws.closed
    codes = [e["code"] for e in errors]
    assert codes[0] == "invalid_json"
    assert {"event_too_large", "unknown_event", "invalid_audio", "input_audio_buffer_commit_empty"} <= set(codes)
    assert all(e["message"].endswith(".") and "Traceback" not in e["message"] for e in errors)
    assert errors[1]["param"] == "session.audio.input.format.rate"

    # The same server still serves a new session, words and all.
    async with connect(server) as connection:
        await connection.session.update(session=TRANSCRIPTION_SESSION)
        await next_event(connection, lambda e: e.type == "session.updated")
        for piece in chunks(pcm16(audio_dir / "jfk.flac")[: 24000 * 2 * 3] + silence(1.5)):
            await connection.input_audio_buffer.append(audio=piece)
        completed = await next_event(
            connection, lambda e: e.type == "conversation.item.input_audio_transcription.completed")
    assert "fellow americans" in completed.transcript.lower()


async def test_the_api_key_is_required_and_browsers_send_it_as_a_subprotocol(server: Running) -> None:
    url = server.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)
        assert refused.value.status == 401
        protocols = ("realtime", f"openai-insecure-api-key.{API_KEY}")
        async with http.ws_connect(url, protocols=protocols) as ws:
            assert ws.protocol == "realtime"
            assert json.loads((await ws.receive(timeout=30)).data)["type"] == "session.created"
        with pytest.raises(aiohttp.WSServerHandshakeError) as wrong:
            await http.ws_connect(url, protocols=("realtime", "openai-insecure-api-key.wrong"))
        assert wrong.value.status == 401


@pytest.fixture
async def strict_server(make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine
                        ) -> AsyncIterator[Running]:
    """A server whose live sessions time out after 1 s without events and last at most 3 s."""
    async with running_server(make_settings(realtime_idle_timeout_s=1, realtime_max_session_s=3),
                              tiny_engine) as running:
        yield running


async def _until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(30):
        async for message in ws:
            events.append(json.loads(message.data))
    return events


async def test_idle_long_and_broken_sessions_are_closed_cleanly(strict_server: Running) -> None:
    url = strict_server.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers=headers) as ws:  # says nothing
            events = await _until_closed(ws)
        assert [e["type"] for e in events] == ["session.created", "error"]
        assert events[-1]["error"]["code"] == "idle_timeout"
        assert ws.close_code == 1000

        async with http.ws_connect(url, headers=headers) as ws:  # keeps talking past the maximum length
            appended, expired = 0, {}
            async with asyncio.timeout(30):
                while not ws.closed:
                    await ws.send_str(json.dumps({"type": "input_audio_buffer.append",
                                                  "audio": base64.b64encode(silence(0.1)).decode()}))
                    appended += 1
                    with contextlib.suppress(TimeoutError):
                        message = await ws.receive(timeout=0.1)
                        if message.type == aiohttp.WSMsgType.TEXT and json.loads(message.data)["type"] == "error":
                            expired = json.loads(message.data)
            assert expired["error"]["code"] == "session_expired"
            assert appended >= 20

        async with http.ws_connect(url, headers=headers) as ws:  # nothing but garbage
            for _ in range(25):
                await ws.send_str("garbage")
            events = await _until_closed(ws)
        assert events[-1]["error"]["code"] == "too_many_errors"
        assert ws.close_code == 1008

        with pytest.raises(aiohttp.WSServerHandshakeError) as other_site:
            await http.ws_connect(url, headers={**headers, "Origin": "https://evil.example"})
        assert other_site.value.status == 403


async def test_a_session_open_when_the_server_shuts_down_is_told_so_and_closed(
    make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine
) -> None:
    """A deploy or a restart: the client hears why (to connect again) and gets 1001 Going Away, not a dropped
    connection."""
    async with running_server(make_settings(), tiny_engine) as running:
        url = running.url.replace("http", "ws") + "/v1/realtime?intent=transcription"
        async with aiohttp.ClientSession() as http, http.ws_connect(
                url, headers={"Authorization": f"Bearer {API_KEY}"}) as ws:
            created = json.loads((await ws.receive(timeout=30)).data)
            assert created["type"] == "session.created"
            await running.service.aclose(grace_s=0)
            events = await _until_closed(ws)
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["error"]["code"] == "shutting_down"
    assert "connect again" in events[0]["error"]["message"]
    assert ws.close_code == 1001


async def test_16_khz_without_vad_transcribes_what_the_client_commits(server: Running, audio_dir: Path) -> None:
    async with connect(server) as connection:
        await connection.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None,
            "transcription": {"model": "whisper-1", "language": "en"}}}})
        updated = await next_event(connection, lambda e: e.type == "session.updated")
        assert updated.session.audio.input.turn_detection is None
        for piece in chunks(pcm16(audio_dir / "jfk.flac", 16000)[: 16000 * 2 * 3], rate=16000):
            await connection.input_audio_buffer.append(audio=piece)
        await connection.input_audio_buffer.commit()
        events = await events_until(connection, "conversation.item.input_audio_transcription.completed")
    kinds = [e.type for e in events]
    assert "input_audio_buffer.speech_started" not in kinds  # the client decides when an utterance ends
    assert "input_audio_buffer.committed" in kinds
    assert "fellow americans" in events[-1].transcript.lower()
