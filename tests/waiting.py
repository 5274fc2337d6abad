"""Waiting in tests: poll a condition under a deadline (never a bare sleep standing in for an event)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(check: Callable[[], T | Awaitable[T]], what: str = "the condition", timeout: float = 60.0,
                every: float = 0.01) -> T:
    """Poll `check` (plain or async) until it returns something truthy, and return that; fail with an
    AssertionError naming `what` once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)  # polling interval under a deadline, not synchronisation


def wait_until(check: Callable[[], T], what: str = "the condition", timeout: float = 30.0,
               every: float = 0.05) -> T:
    """`until` for code outside the event loop (starting servers and processes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)  # polling interval under a deadline, not synchronisation
