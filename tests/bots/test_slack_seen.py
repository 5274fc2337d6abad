"""The store of handled Slack event ids: real SQLite files in a temp data dir."""

from __future__ import annotations

import stat
from pathlib import Path

from chatscribe.bots.slack_seen import DEFAULT_TTL_S, SeenEvents


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_handled_event_is_a_repeat_for_the_next_process_too(tmp_path: Path) -> None:
    path = tmp_path / "data" / "slack-events.sqlite3"
    first = SeenEvents(path)
    assert first.begin("Ev1")
    assert not first.begin("Ev1")  # a retry while the first delivery is still being handled
    first.finish("Ev1", handled=True)
    first.close()
    second = SeenEvents(path)
    assert not second.begin("Ev1")
    assert second.begin("Ev2")
    second.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_event_whose_handler_failed_or_died_is_handled_again(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    crashed = SeenEvents(path)
    assert crashed.begin("EvCrash")  # the process dies before the work is journaled: no finish()
    assert crashed.begin("EvFail")
    crashed.finish("EvFail", handled=False)
    crashed.close()
    restarted = SeenEvents(path)
    assert restarted.begin("EvCrash")
    assert restarted.begin("EvFail")
    restarted.close()


def test_ids_are_kept_for_at_least_an_hour_then_forgotten(tmp_path: Path) -> None:
    assert DEFAULT_TTL_S >= 3600
    clock = Clock()
    seen = SeenEvents(tmp_path / "seen.sqlite3", clock=clock)
    seen.begin("Ev1")
    seen.finish("Ev1", handled=True)
    clock.now += 3600  # Slack's last retry comes about an hour after the first delivery
    assert not seen.begin("Ev1")
    clock.now += DEFAULT_TTL_S
    assert seen.begin("Ev1")
    seen.close()
