"""`chatscribe run slack` as deployed: a real subprocess on the real tiny.en model, answering a fake Slack on
127.0.0.1, with its data dir (journal, cache) kept across SIGKILLs, SIGTERMs and restarts.

The test drives it with signed Slack requests and watches it only from outside: the calls the fake Slack
received, /readyz, the journal opened read-only, and what the process wrote to stdout/stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.process import until_ready
from tests.fakes.slack_api import FakeSlack, event_body, message_event, signed_headers, text_of
from tests.ports import free_port
from tests.waiting import until

SECRET = "e2e-signing-secret-0123456789abcdef"
CHANNEL = "C0GENERAL"
DEADLINE_S = 120.0
"""Generous: the machine running the tests may be shared and slow. Waits end as soon as the thing happens."""
UNFINISHED = {"queued", "running", "transcribed"}


class SlackProcess:
    """One deployment (one data dir) of `chatscribe run slack`, started as many times as a test needs."""

    def __init__(self, fake: FakeSlack, workdir: Path) -> None:
        self.fake = fake
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("CHATSCRIBE_", "SLACK_", "TELEGRAM_", "DISCORD_"))}
        self.env.update({
            "CHATSCRIBE_MODEL": "tiny.en", "CHATSCRIBE_DEVICE": "cpu", "CHATSCRIBE_WORKERS": "1",
            "CHATSCRIBE_DATA_DIR": str(self.data_dir), "CHATSCRIBE_HTTP_HOST": "127.0.0.1",
            "CHATSCRIBE_HTTP_PORT": str(self.port), "CHATSCRIBE_LOG_FORMAT": "json",
            "SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url,
            "SLACK_STATUS_AFTER_S": "3600",
        })
        self._http: aiohttp.ClientSession | None = None

    # -- the process ------------------------------------------------------------------------------------
    async def start(self, **env: str) -> None:
        """Start (again) on the same data dir and wait until /readyz says the model and Slack are ready."""
        assert self.process is None or self.process.returncode is not None, "already running"
        self.runs += 1
        self.env.update(env)
        with self.stdout_path(self.runs).open("wb") as out, self.stderr_path(self.runs).open("wb") as err:
            # cwd is the test's own folder, so no .env of the checkout is read
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chatscribe", "run", "slack", cwd=self.workdir, env=self.env,
                stdout=out, stderr=err)
        await until_ready(self.http, self.base, self.process, timeout=DEADLINE_S)

    async def kill(self) -> None:
        """kill -9: nothing in the process gets to run any more."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), DEADLINE_S)

    async def terminate(self) -> tuple[int, float]:
        """SIGTERM, as systemd or Kubernetes stop it; the exit code and the seconds it took to exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.wait_for(self.process.wait(), DEADLINE_S)
        return code, time.monotonic() - started

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # -- what a person does in Slack ---------------------------------------------------------------------
    async def share(self, name: str, data: bytes, *, mimetype: str, channel: str = CHANNEL,
                    user: str = "UALICE") -> dict[str, Any]:
        """A person shares a file: Slack stores it and sends the signed message event to the process."""
        info = self.fake.add_file(name, data, mimetype=mimetype)
        message = self.fake.add_message(channel, files=[info], user=user)
        body = event_body(message_event(channel, message))
        headers = {"Content-Type": "application/json", **signed_headers(SECRET, body)}
        async with self.http.post(f"{self.base}/slack/events", data=body, headers=headers) as response:
            assert response.status == 200
        return message

    # -- watching from outside ---------------------------------------------------------------------------
    async def until(self, check: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
        """Poll `check` until it is truthy; fail early, with the process's log, if the process died."""
        def alive_and(check: Callable[[], Any] = check) -> Any:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(f"chatscribe exited ({self.process.returncode}) while waiting for {what}:\n"
                                     f"{self.stderr_text()[-3000:]}")
            return check()

        return await until(alive_and, what, timeout, every=0.05)

    def journal(self) -> dict[str, str]:
        """job id -> state, read from the journal SQLite file without writing to it."""
        return dict(self._read_journal("SELECT id, state FROM jobs ORDER BY created"))

    def media_in_hand(self) -> set[str]:
        """Jobs whose media the process is reading or transcribing right now, as the journal says."""
        return {job_id for (job_id,) in self._read_journal("SELECT id FROM jobs WHERE media_in_hand=1")}

    def crashes(self) -> dict[str, int]:
        """job id -> deaths of the process counted against it (while its media was read or transcribed)."""
        return dict(self._read_journal("SELECT id, crashes FROM jobs"))

    def _read_journal(self, query: str) -> list[tuple[Any, ...]]:
        path = self.data_dir / "jobs.sqlite3"
        if not path.exists():
            return []
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # the process is still creating it
            raise
        finally:
            db.close()

    def sent(self, message: dict[str, Any], channel: str = CHANNEL) -> list[str]:
        """Texts of every chat.postMessage/chat.update that Slack accepted into this message's thread."""
        thread_of = {m["ts"]: m.get("thread_ts") for m in self.fake.history.get(channel, [])}
        texts = []
        for call in self.fake.calls:
            params = call.params
            if call.error is not None or params.get("channel") != channel:
                continue
            in_thread = (call.method == "chat.postMessage" and params.get("thread_ts") == message["ts"]) or (
                call.method == "chat.update" and thread_of.get(params.get("ts")) == message["ts"])
            if in_thread:
                texts.append(text_of(params))
        return texts

    def stdout_path(self, run: int) -> Path:
        return self.workdir / f"run-{run}.stdout"

    def stderr_path(self, run: int) -> Path:
        return self.workdir / f"run-{run}.stderr"

    def stderr_text(self, run: int | None = None) -> str:
        return self.stderr_path(run or self.runs).read_text(errors="replace")

    def output_text(self) -> str:
        """Everything every run wrote, stdout and stderr."""
        return "".join(self.stdout_path(r).read_text(errors="replace") + self.stderr_path(r).read_text(errors="replace")
                       for r in range(1, self.runs + 1))

    def log_records(self, run: int) -> list[dict[str, Any]]:
        """The run's stderr as JSON records; every line must be one (CHATSCRIBE_LOG_FORMAT=json)."""
        return [json.loads(line) for line in self.stderr_text(run).splitlines() if line.strip()]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        yield slack


@pytest.fixture
async def chatscribe(fake: FakeSlack, tmp_path: Path) -> AsyncIterator[SlackProcess]:
    deployment = SlackProcess(fake, tmp_path)
    try:
        yield deployment
    finally:
        await deployment.close()
