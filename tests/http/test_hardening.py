"""Hostile requests to the real server on 127.0.0.1: bodies too large or too slow, forms with too many
parts, bad Slack headers, a browser's Host, clients that leave. Raw sockets where the test must control
each byte; the real service, the real Slack bot (bolt) and the real tiny.en model behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from chatscribe.bots import logs
from chatscribe.bots.http import HttpServer, create_app
from chatscribe.bots.slack_bot import SlackBot, SlackSettings
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.service import TranscriptionService
from tests.fakes.process import chatscribe_process
from tests.fakes.slack_api import FakeSlack, signed_headers
from tests.http.conftest import API_KEY
from tests.ports import free_port
from tests.waiting import until

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
UPLOAD = "/v1/audio/transcriptions"


@dataclass
class Server:
    port: int
    service: TranscriptionService

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(head)
        await writer.drain()
        return reader, writer


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest.fixture
def start(make_settings: Callable[..., Settings], tiny_engine: FasterWhisperEngine,
          fake_slack: FakeSlack) -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    """The whole HTTP surface as `chatscribe run` builds it (API and /slack/events), with settings."""

    @contextlib.asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[Server]:
        settings = make_settings(**overrides)
        async with TranscriptionService(settings=settings, engine=tiny_engine) as service:
            slack = SlackBot(settings=SlackSettings(_env_file=None, bot_token=fake_slack.token,  # type: ignore[call-arg]
                                                    signing_secret=SECRET, api_url=fake_slack.api_url),
                             service=service)
            http = HttpServer(create_app(service=service, settings=settings, bots=[slack]), "127.0.0.1", 0)
            await http.start()
            try:
                yield Server(http.port, service)
            finally:
                await http.stop()
                await slack.stop()

    return running


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _field(boundary: str, name: str, value: bytes, file_name: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{file_name}"' if file_name else "")
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


async def _status(reader: asyncio.StreamReader, within_s: float = 10) -> int:
    async with asyncio.timeout(within_s):
        line = await reader.readline()
    assert line.startswith(b"HTTP/1.1 "), line
    return int(line.split()[1])


async def _answer(reader: asyncio.StreamReader, within_s: float = 10) -> tuple[int, bytes]:
    """Status and body of one answer (the server closes the connection after a refusal)."""
    status = await _status(reader, within_s)
    async with asyncio.timeout(within_s):
        rest = await reader.read(65536)
    return status, rest.partition(b"\r\n\r\n")[2]


async def _post_chunked(url: str, headers: dict[str, str], first: Callable[[], AsyncIterator[bytes]],
                        last: bytes = b"") -> tuple[int, dict[str, Any] | str, int]:
    """Send what `first` yields, then wait for the answer before sending `last`: a server that reads the
    whole body before answering never answers (the test's timeout says so). Returns (status, body, sent)."""
    answered = asyncio.Event()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        async for chunk in first():
            sent += len(chunk)
            yield chunk
        await answered.wait()
        yield last

    async with (aiohttp.ClientSession() as session, asyncio.timeout(30),
                session.post(url, data=body(), headers=headers) as response):
        answered.set()
        text = await response.text()
        try:
            return response.status, json.loads(text), sent
        except ValueError:
            return response.status, text, sent


# -- per-route body limits ------------------------------------------------------------------------


async def test_unsigned_post_declaring_95_mb_to_slack_is_refused_before_its_body(start: Any) -> None:
    async with start() as server:
        reader, writer = await server.connect(_head("/slack/events", {
            "Content-Type": "application/json", "Content-Length": "95000000"}) + b"{" + b" " * 65535)
        status, body = await _answer(reader)
        writer.close()
    assert status == 413
    assert b"/slack/events takes at most 1024 KB" in body


async def test_chunked_unsigned_post_to_slack_is_read_no_further_than_the_webhook_limit(start: Any) -> None:
    async def megabytes() -> AsyncIterator[bytes]:
        for _ in range(24):  # 1.5 MB, more than the 1 MB a webhook may send; the rest waits for the answer
            yield b" " * 65536

    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(int(time.time())),
               "X-Slack-Signature": "v0=" + "0" * 64}
    async with start() as server:
        status, _, _ = await _post_chunked(f"{server.url}/slack/events", headers, megabytes, b" " * 90_000_000)
    assert status == 413


async def test_api_refuses_an_oversized_declared_length_on_a_route_without_uploads(start: Any) -> None:
    async with start() as server:
        reader, writer = await server.connect(
            _head("/v1/models", {**AUTH, "Content-Length": "50000000"}) + b"x" * 1000)
        status, body = await _answer(reader)
        writer.close()
    assert status == 413
    assert json.loads(body)["error"]["code"] == "too_large"


# -- multipart: one budget per request -----------------------------------------------------------


async def test_thousands_of_small_fields_are_refused_after_a_few(start: Any) -> None:
    boundary = "fields"

    async def fields() -> AsyncIterator[bytes]:
        for index in range(200):  # the other 11,800 only once the server has answered
            yield _field(boundary, f"f{index}", b"x" * 60)

    rest = b"".join(_field(boundary, f"f{index}", b"x" * 60) for index in range(200, 12_000))
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with start() as server:
        status, body, _ = await _post_chunked(f"{server.url}{UPLOAD}", headers, fields,
                                              rest + f"--{boundary}--\r\n".encode())
    assert status == 400
    assert isinstance(body, dict)
    assert "more than 32 parts" in body["error"]["message"]


async def test_the_file_and_the_other_fields_share_one_byte_budget(start: Any, audio: Any) -> None:
    """0.45 MB of file and 20 fields of 60 KB: each under its own limit, together over the request's."""
    boundary = "budget"

    async def form() -> AsyncIterator[bytes]:
        yield _field(boundary, "file", audio("jfk.flac")[:450_000], "a.flac")
        for index in range(20):
            yield _field(boundary, f"junk{index}", b"y" * 60_000)

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with start(max_file_mb=0.5) as server:
        status, body, _ = await _post_chunked(f"{server.url}{UPLOAD}", headers, form,
                                              f"--{boundary}--\r\n".encode())
    assert status == 413
    assert isinstance(body, dict)
    assert body["error"]["code"] == "too_large"


# -- admission before the body, and media counted in bytes -----------------------------------------


async def test_rate_limit_answers_before_the_upload_is_read(start: Any, audio: Any) -> None:
    async with start(user_rate="1/hour") as server:
        async with aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("file", audio("jfk_voice.ogg"), filename="a.ogg")
            async with session.post(f"{server.url}{UPLOAD}", data=form, headers=AUTH) as first:
                assert first.status == 200
        boundary = "late"
        reader, writer = await server.connect(
            _head(UPLOAD, {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}",
                           "Content-Length": "5000000"})
            + _field(boundary, "file", b"\0" * 65536, "b.ogg")[:-2])
        status, body = await _answer(reader)  # 64 KB of the 5 MB sent: the answer must not wait for more
        writer.close()
    assert status == 429
    assert "try again" in json.loads(body)["error"]["message"]


async def test_media_held_in_memory_is_bounded_in_bytes(start: Any, audio: Any) -> None:
    """One upload of unknown length is being received (counted at the 1.2 MB file limit) against a
    1.5 MB budget: a 1.15 MB file does not fit beside it and is turned away, then fits once it is gone."""
    flac = audio("jfk.flac")
    async with start(max_file_mb=1.2, media_memory_mb=1.5) as server, aiohttp.ClientSession() as session:
        slow_sent, release = asyncio.Event(), asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield _field("s", "file", b"\0" * 1000, "slow.ogg")
            slow_sent.set()
            await release.wait()
            yield b"--s--\r\n"

        slow_upload = asyncio.ensure_future(session.post(
            f"{server.url}{UPLOAD}", data=slow(), headers={**AUTH, "Content-Type": "multipart/form-data; boundary=s"}))
        await slow_sent.wait()
        deadline = time.monotonic() + 10
        while server.service.admission.budget.held == 0:  # until the server has taken the slow upload in
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

        async def transcribe() -> tuple[int, dict[str, Any]]:
            form = aiohttp.FormData()
            form.add_field("file", flac, filename="jfk.flac")
            async with session.post(f"{server.url}{UPLOAD}", data=form, headers=AUTH) as response:
                return response.status, await response.json()

        busy, answer = await transcribe()
        assert busy == 429, answer
        assert "try again" in answer["error"]["message"]
        release.set()
        async with await slow_upload as left:
            assert left.status == 400  # a kilobyte of zeros is no recording
        ok, answer = await transcribe()
        assert ok == 200
        assert "country" in answer["text"].lower()
        assert server.service.admission.budget.held == 0


# -- Slack: headers checked first, one short line per refusal -----------------------------------


async def test_bad_slack_requests_get_401_and_one_short_warning(start: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # before the bot is made: bolt copies the root level onto its loggers
    big = json.dumps({"type": "event_callback", "event": {"text": "z" * 900_000}})
    now = str(int(time.time()))
    cases = {
        "bad signature": {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64},
        "timestamp abc": {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
        "no headers": {},
        "stale": signed_headers(SECRET, big, timestamp=int(time.time()) - 3600),
    }
    async with start() as server, aiohttp.ClientSession() as session:
        for name, headers in cases.items():
            caplog.clear()
            sent = {"Content-Type": "application/json", **headers}
            async with session.post(f"{server.url}/slack/events", data=big.encode(), headers=sent) as response:
                assert response.status == 401, name
            records = [r for r in caplog.records if r.name.startswith(("chatscribe", "slack", "aiohttp"))]
            assert len(records) == 1, (name, [r.getMessage()[:200] for r in records])
            assert records[0].levelno == logging.WARNING, name
            assert records[0].exc_info is None, name
            assert len(records[0].getMessage()) <= 300, name


# -- slowloris ------------------------------------------------------------------------------------


async def test_a_request_head_sent_one_byte_at_a_time_is_cut_off(start: Any) -> None:
    async with start(http_header_timeout_s=1) as server:
        reader, writer = await server.connect(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in b"X-Slow: " + b"a" * 100:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)  # the attacker's pace, not synchronisation

        trickling = asyncio.ensure_future(trickle())
        started = time.monotonic()
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""  # closed by the server
        took = time.monotonic() - started
        trickling.cancel()
        writer.close()
    assert took < 5


@pytest.mark.parametrize("path", [UPLOAD, "/slack/events"])
async def test_a_body_sent_one_byte_a_second_is_cut_off(start: Any, path: str) -> None:
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=b", "Content-Length": "100000"}
    if path == "/slack/events":
        headers = {"Content-Type": "application/json", "Content-Length": "100000",
                   "X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}
    async with start(http_body_timeout_s=1) as server:
        reader, writer = await server.connect(_head(path, headers) + b"--")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(60):
                    writer.write(b"b")
                    await writer.drain()
                    await asyncio.sleep(1)  # one byte a second: the attacker's pace

        trickling = asyncio.ensure_future(trickle())
        started = time.monotonic()
        status = await _status(reader, within_s=10)
        async with asyncio.timeout(10):
            with contextlib.suppress(ConnectionResetError):
                while await reader.read(65536):  # then the connection is closed
                    pass
        took = time.monotonic() - started
        trickling.cancel()
        writer.close()
    assert status == 408
    assert took < 6


# -- clients that leave -----------------------------------------------------------------------


async def test_a_client_leaving_mid_upload_is_one_warning(start: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with start() as server:
        _, writer = await server.connect(
            _head(UPLOAD, {**AUTH, "Content-Type": "multipart/form-data; boundary=b", "Content-Length": "900000"})
            + _field("b", "file", b"\0" * 100_000, "a.ogg")[:-2])
        await asyncio.sleep(0)
        writer.transport.abort()
        deadline = time.monotonic() + 10
        while not any("left during" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            await asyncio.sleep(0.02)
        assert server.service.admission.budget.held == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# -- Host header -----------------------------------------------------------------------------


async def test_without_keys_only_loopback_host_names_are_served(start: Any) -> None:
    async with start(api_keys="") as server, aiohttp.ClientSession() as session:
        port = server.port
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
            async with session.get(f"{server.url}/v1/models", headers={"Host": host}) as response:
                assert response.status == 200, host
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.nip.io:{port}", "[2001:db8::1]"):
            async with session.get(f"{server.url}/v1/models", headers={"Host": host}) as response:
                assert response.status == 421, host
                assert "CHATSCRIBE_API_KEYS" in (await response.json())["error"]["message"]
            async with session.get(f"{server.url}/", headers={"Host": host}) as page:
                assert page.status == 421, host
        # A signed webhook proves itself: a reverse proxy may pass its public name.
        async with session.post(f"{server.url}/slack/events", data=b"{}",
                                headers={"Host": "slack.example.org", "Content-Type": "application/json"}) as hook:
            assert hook.status == 401


async def test_with_keys_any_host_name_is_served(start: Any) -> None:
    async with (start() as server, aiohttp.ClientSession() as session,
                session.get(f"{server.url}/v1/models", headers={**AUTH, "Host": "api.example.org"}) as response):
        assert response.status == 200


# -- the log of a real `chatscribe run` --------------------------------------------------------------


async def test_refused_requests_leave_the_log_of_chatscribe_run_small(fake_slack: FakeSlack, tmp_path: Any) -> None:
    """The log as production writes it (bots/logs.py): bolt's loggers carry their own level, so only what
    reaches the handler counts. Before, each bad-signature request wrote its whole body."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATSCRIBE_", "TELEGRAM_", "DISCORD_",
                                                                     "SLACK_"))}
    env.update(SLACK_BOT_TOKEN=fake_slack.token, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake_slack.api_url,
               CHATSCRIBE_DATA_DIR=str(tmp_path / "data"), CHATSCRIBE_MODEL="tiny.en", CHATSCRIBE_DEVICE="cpu",
               CHATSCRIBE_HTTP_PORT=str(port), CHATSCRIBE_LOG_LEVEL="DEBUG")
    log_file = tmp_path / "chatscribe.log"
    big = json.dumps({"type": "event_callback", "event": {"text": "z" * 900_000}}).encode()
    now = str(int(time.time()))
    async with chatscribe_process("run", "slack", env=env, cwd=tmp_path, log=log_file, port=port), \
            aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        before = log_file.stat().st_size
        for timestamp in (now, "abc", now, "abc"):
            headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp,
                       "X-Slack-Signature": "v0=" + "0" * 64}
            async with http.post(f"{base}/slack/events", data=big, headers=headers) as response:
                assert response.status == 401
        server = Server(port, None)  # type: ignore[arg-type]
        reader, writer = await server.connect(_head("/slack/events", {
            "Content-Type": "application/json", "Content-Length": "95000000"}) + b"{")
        assert (await _answer(reader))[0] == 413
        writer.close()
        await until(lambda: log_file.read_text().count("refused") >= 5, "five refusals in the log", 10)
        grown = log_file.stat().st_size - before
    logged = log_file.read_text()
    refusals = [line for line in logged.splitlines() if "refused" in line]
    assert len(refusals) == 5
    assert all(len(line) <= 300 for line in refusals)
    assert grown < 5 * 300 + 2000  # five short lines (and little else) for 3.6 MB of refused bodies
    assert "Traceback" not in logged
    assert " ERROR " not in logged


def test_library_child_loggers_below_warning_are_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """bolt gives each logger it makes the root's level (INFO), past the WARNING set on "slack_bolt"."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in logs._NOISY}
    try:
        logs.configure("INFO")
        bolt = logging.getLogger("slack_bolt.RequestVerification")
        bolt.setLevel(logging.INFO)  # what bolt does when the app is made
        bolt.info("Invalid request signature detected (body: %s)", "z" * 100_000)
        bolt.warning("a library warning is kept")
        logging.getLogger("chatscribe.bots.test").info("our own INFO is kept")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger("slack_bolt.RequestVerification").setLevel(logging.NOTSET)
    written = stream.getvalue()
    assert "zzzz" not in written
    assert "a library warning is kept" in written
    assert "our own INFO is kept" in written
