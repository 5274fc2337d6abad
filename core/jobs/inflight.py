"""In-flight dedup: the same media with the same options, sent again while it is being transcribed,
waits for that transcription instead of running a second one.

Keyed by transcript key and content hash, so two conversations sending one file share the engine run
and each still gets its answer through its own delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

from ..errors import ChatscribeError, ShuttingDown
from ..transcript import Transcript


class InFlight:
    """Transcriptions running now, by key; the first caller runs, later ones share its outcome."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Transcript]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def share(self, key: Hashable, run: Callable[[], Awaitable[Transcript]]) -> Transcript:
        """`run()`'s transcript, or that of the run already under way for `key`.

        A sharer sees the first run's ChatscribeError (the media is bad for everyone); any other failure
        or a cancellation of the first run reaches sharers as ShuttingDown (nothing of theirs was wrong)."""
        if key in self._running:
            return await asyncio.shield(self._running[key])
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            transcript = await run()
            future.set_result(transcript)
            return transcript
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, ChatscribeError) else ShuttingDown())
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._running[key]


__all__ = ["InFlight"]
