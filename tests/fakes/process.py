"""For tests that start `chatscribe run` as a subprocess against a fake platform (ports: tests/ports.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp


@contextlib.asynccontextmanager
async def chatscribe_process(*args: str, env: Mapping[str, str], cwd: Path, log: Path,
                             port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m chatscribe ARGS` writing stdout and stderr to `log`, ready (/readyz on `port`) when the
    block starts and stopped with SIGTERM (graceful) when it ends; its exit code is `returncode` after."""
    with log.open("wb") as log_out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatscribe", *args, cwd=cwd, env=dict(env), stdout=log_out,
            stderr=asyncio.subprocess.STDOUT)
        try:
            async with aiohttp.ClientSession() as http:
                await until_ready(http, f"http://127.0.0.1:{port}", process)
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=60)


async def until_ready(http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process,
                      timeout: float = 120) -> None:
    """Poll /readyz (with a deadline) until the model is loaded and the bots are connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.returncode is None, "chatscribe exited early"
        try:
            async with http.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)  # polling interval under a deadline, not synchronisation
    raise AssertionError("chatscribe run did not become ready")
