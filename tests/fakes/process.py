"""For tests that start `chatscribe run` as a subprocess against a fake platform: a port, and readiness."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
