"""Busy answers and rate limits count across front ends sharing one Redis; with no worker running,
accepted notes wait and their senders are told answers are delayed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.errors import Busy  # noqa: E402
from chatscribe.core.scaleout.runner import DELAYED  # noqa: E402
from tests.audio_tools import variants  # noqa: E402
from tests.scaleout.cluster import FrontEnd, RedisServer, await_until, front_end  # noqa: E402


async def send(front: FrontEnd, data: bytes, name: str, user: str) -> None:
    front.collector.files[name] = data
    await front.service.submit(front.collector.request(name, chat=user, user=user))


async def test_rate_limit_and_queue_cap_count_across_front_ends(
    redis_server: RedisServer, audio: Callable[[str], bytes], tmp_path: Path
) -> None:
    media = variants(audio("jfk.flac"), 6, seconds=2.0)
    limits = {"user_rate": "3/min", "queue_max": 4}
    async with front_end(redis_server, tmp_path / "a", **limits) as first, \
            front_end(redis_server, tmp_path / "b", **limits) as second:
        await send(first, media[0], "n0", "ada")
        await send(first, media[1], "n1", "ada")
        await send(second, media[2], "n2", "ada")
        with pytest.raises(Busy, match="You've sent a lot") as rate_limited:
            await send(second, media[3], "n3", "ada")  # her fourth within the minute, on the other front end
        assert rate_limited.value.retry_after_s > 0

        # No worker runs: the accepted notes wait, their senders are told answers are delayed...
        await await_until(lambda: any(u.detail == DELAYED for _, u in first.collector.progress_updates),
                          "a 'delayed' status", timeout=30)
        # ...and they fill the shared queue: 2 held by the first front end + 1 here + 1 more = the cap of 4.
        await await_until(lambda: second.runner.limits.others_active == 2, "the other front end's count", 30)
        await send(second, media[4], "n4", "bob")
        with pytest.raises(Busy, match="Too many recordings are waiting"):
            await send(second, media[5], "n5", "cy")
        assert not first.collector.answers
        assert not second.collector.answers
        states = {**first.service.journal.states(), **second.service.journal.states()}
        assert len(states) == 4, "the four accepted notes are kept"
        assert "delivered" not in states.values()
