"""For tests that start `chatscribe run` as a subprocess against a fake platform: readiness (ports: tests/ports.py)."""

from __future__ import annotations

import asyncio
import time

import aiohttp


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
