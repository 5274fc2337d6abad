"""A burst of short notes from many channels, with `chatscribe run slack` SIGKILLed twice while they are
in flight: every note is answered exactly once, none lost, none twice, none set aside for crashes it
did not cause. The 200-note, 20-channel version is bench/bench_kill_burst.py.
"""

from __future__ import annotations

from typing import Any

from tests.e2e import kill_burst
from tests.e2e.conftest import SlackProcess


async def test_a_burst_from_eight_channels_killed_twice_is_answered_once_each(
    chatscribe: SlackProcess, audio: Any
) -> None:
    result = await kill_burst.run(chatscribe, audio, notes=32, chats=8)
    assert len(result.kills) == 2
    assert all(0 < answered < result.notes for answered in result.kills)  # each kill left work in flight
    assert result.unanswered == []
    assert result.duplicated == []
    assert result.set_aside == []  # two deaths are fewer than the crash limit: nothing may be set aside
    assert result.wrong == []
    # Each death was counted against exactly the notes being read or transcribed when it happened.
    assert result.misattributed == {}
    assert len(chatscribe.journal()) == result.notes
