"""The server around the API: limits on uploads, keys, readiness, metrics and progress streaming."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import openai
import pytest

from chatscribe.bots.http import HttpServer, create_app
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.errors import ConfigError
from chatscribe.core.service import TranscriptionService
from tests.http.conftest import API_KEY, Running

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def small_limit_server(
    make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine
) -> AsyncIterator[Running]:
    settings = make_settings(max_file_mb=0.5)
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        http = HttpServer(create_app(service=service, settings=settings), "127.0.0.1", 0)
        await http.start()
        try:
            yield Running(f"http://127.0.0.1:{http.port}", service)
        finally:
            await http.stop()


async def test_too_large_upload_is_413_from_the_client(small_limit_server: Running, audio) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await small_limit_server.client().audio.transcriptions.create(
            model="whisper-1", file=("jfk.flac", audio("jfk.flac"))  # 1.15 MB against a 0.5 MB limit
        )
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "too_large"
    assert "limit is 0.5 MB" in caught.value.body["message"]


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_too_large_upload_is_refused_before_it_is_all_sent(
    small_limit_server: Running, declare_length: bool
) -> None:
    """The client sends 1 MB, then waits for the answer before sending more: the server must answer first."""
    answered = asyncio.Event()
    sent = 0
    boundary = "xyzboundary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.ogg"\r\n'
               "Content-Type: audio/ogg\r\n\r\n").encode()
        for _ in range(16):
            chunk = b"\0" * 65536
            sent += len(chunk)
            yield chunk
        await answered.wait()  # the rest only after the server has answered (it then discards it)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if declare_length:
        headers["Content-Length"] = str(50_000_000)
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        # With a declared length the rest of the declared body never comes: the connection is dropped after.
        response = await session.post(f"{small_limit_server.url}/v1/audio/transcriptions", data=body(),
                                      headers=headers)
        answered.set()
        assert response.status == 413
        error = (await response.json())["error"]
        assert error["code"] == "too_large"
        response.release()
    assert sent <= 1_048_576


async def test_expect_continue_upload_is_refused_before_the_body(small_limit_server: Running) -> None:
    port = int(small_limit_server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\n"
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(30):
        status = await reader.readline()
    writer.close()
    assert status.startswith(b"HTTP/1.1 413")


async def test_busy_is_429_with_retry_after(
    make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine, audio
) -> None:
    settings = make_settings(user_rate="1/hour")
    async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
        http = HttpServer(create_app(service=service, settings=settings), "127.0.0.1", 0)
        await http.start()
        try:
            client = Running(f"http://127.0.0.1:{http.port}", service).client()
            await client.audio.transcriptions.create(model="whisper-1", file=("a.ogg", audio("jfk_voice.ogg")))
            with pytest.raises(openai.RateLimitError) as caught:
                await client.audio.transcriptions.create(model="whisper-1", file=("a.ogg", audio("jfk_voice.ogg")))
        finally:
            await http.stop()
    assert caught.value.status_code == 429
    assert int(caught.value.response.headers["Retry-After"]) > 0
    assert "try again" in caught.value.body["message"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "chatscribe.example.org"])
def test_non_loopback_bind_without_keys_refuses_to_start(
    make_settings: Callable[..., Settings], host: str
) -> None:
    with pytest.raises(ConfigError, match="CHATSCRIBE_API_KEYS"):
        create_app(settings=make_settings(http_host=host, api_keys=""))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_bind_without_keys_is_allowed(make_settings: Callable[..., Settings], host: str) -> None:
    assert create_app(settings=make_settings(http_host=host, api_keys=""))


def test_chatscribe_run_exits_with_the_reason_on_open_bind_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATSCRIBE_", "TELEGRAM_", "DISCORD_",
                                                                     "SLACK_"))}
    env.update(CHATSCRIBE_HTTP_HOST="0.0.0.0", CHATSCRIBE_HTTP_PORT="0", CHATSCRIBE_DATA_DIR=str(tmp_path),
               CHATSCRIBE_MODEL="tiny.en")
    done = subprocess.run([sys.executable, "-m", "chatscribe", "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "CHATSCRIBE_API_KEYS" in done.stderr
    assert "Traceback" not in done.stderr


class _Connecting:
    """A bot that has not reached its platform yet (the Bot protocol, nothing else)."""

    platform = "telegram"

    def routes(self) -> list:
        return []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def not_ready(self) -> str | None:
        return "connecting to Telegram"


async def test_readyz_waits_for_the_model_and_names_the_reasons(
    make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine, audio
) -> None:
    settings = make_settings()
    async with TranscriptionService(settings=settings) as service, aiohttp.ClientSession() as session:
        bot = _Connecting()
        http = HttpServer(create_app(service=service, settings=settings, bots=[bot]), "127.0.0.1", 0)
        await http.start()
        url = f"http://127.0.0.1:{http.port}"
        try:
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 503
                assert (await ready.json())["reasons"] == ["model loading", "telegram: connecting to Telegram"]
            client = Running(url, service).client()
            with pytest.raises(openai.APIStatusError) as caught:
                await client.audio.transcriptions.create(model="whisper-1", file=("a.ogg", audio("jfk_voice.ogg")))
            assert caught.value.status_code == 503
            assert caught.value.response.headers["Retry-After"]

            service.set_engine(tiny_engine)
            bot.not_ready = lambda: None  # type: ignore[method-assign]
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 200
            result = await client.audio.transcriptions.create(model="whisper-1",
                                                              file=("a.ogg", audio("jfk_voice.ogg")))
            assert "country" in result.text.lower()
        finally:
            await http.stop()


async def test_readyz_reports_an_unwritable_data_dir(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    settings = make_settings(data_dir=blocker)
    http = HttpServer(create_app(settings=settings), "127.0.0.1", 0)
    await http.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{http.port}/readyz") as r:
            reasons = (await r.json())["reasons"]
    finally:
        await http.stop()
    assert r.status == 503
    assert any("not writable" in reason for reason in reasons)


async def test_metrics_count_transcriptions(server: Running, audio) -> None:
    await server.client().audio.transcriptions.create(model="whisper-1", file=("a.ogg", audio("jfk_voice.ogg")))
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/metrics") as response:
        text = await response.text()
    assert response.status == 200
    assert "chatscribe_transcriptions_total 1.0" in text
    assert 'chatscribe_job_latency_seconds_count{platform="http"} 1.0' in text


async def test_stream_reports_progress_then_the_transcript(server: Running, audio) -> None:
    form = aiohttp.FormData()
    form.add_field("file", audio("jfk_voice.ogg"), filename="jfk_voice.ogg", content_type="audio/ogg")
    form.add_field("response_format", "verbose_json")
    form.add_field("stream", "true")
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.url}/v1/audio/transcriptions", data=form, headers=AUTH
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = [line async for line in response.content]
    events = [json.loads(line[5:]) for line in lines if line.startswith(b"data:")]
    # Progress rides in SSE comments (skipped by OpenAI's clients, read by the playground).
    marker = b": chatscribe.progress "
    progress = [json.loads(line[len(marker):]) for line in lines if line.startswith(marker)]
    assert progress
    assert progress[0]["stage"] == "transcribing"
    assert events[-1]["type"] == "transcript.text.done"
    assert events[-1]["language"] == "english"
    assert "ask not what your country" in events[-1]["text"].lower()


async def test_playground_page_and_assets_are_served(server: Running) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/") as page:
            html = await page.text()
            assert page.status == 200
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<script src="/static/app.js">' in html
        for asset in ("app.js", "style.css"):
            async with session.get(f"{server.url}/static/{asset}") as response:
                assert response.status == 200


async def test_unknown_api_paths_answer_in_openai_shape(server: Running) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(f"{server.url}/v1/audio/speech") as missing:
            assert missing.status == 404
            assert (await missing.json())["error"]["code"] == "not_found"
        async with session.get(f"{server.url}/v1/audio/transcriptions") as wrong_method:
            assert wrong_method.status == 405
            assert (await wrong_method.json())["error"]["type"] == "invalid_request_error"
