"""Slack event ids already handled, in SQLite in the data dir, so a redelivery after a restart is dropped.

Slack redelivers an event (same event_id, X-Slack-Retry-Num) when it got no 200 within 3 s, for up to
about an hour; Socket Mode does the same with retry_attempt. An id is `begun` when its handler starts
and `done` once the handler has journaled its work and the ack is about to go out. A redelivery is
dropped when the id is done, or begun by this process and still running; an id begun by a process that
died before finishing is handled again, so nothing accepted is lost. Ids are kept for `ttl_s`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from chatscribe.core import storage_error

log = logging.getLogger(__name__)
DEFAULT_TTL_S = 3 * 3600
"""Longer than Slack's retry window (its last retry comes about an hour after the first delivery)."""
_PURGE_EVERY_S = 300


class SeenEvents:
    def __init__(self, path: Path, *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created private before SQLite opens it: event ids say who talked where and when.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._mine: set[str] = set()
        """Ids begun by this process and not finished: a concurrent retry of one of them is dropped."""
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, done INTEGER NOT NULL, "
                         "at REAL NOT NULL)")
        self._last_purge = float("-inf")

    def begin(self, event_id: str) -> bool:
        """True when this delivery is to be handled; False for a repeat (handled, or being handled here)."""
        now = self._clock()
        with self._lock:
            if event_id in self._mine:
                return False
            self._purge(now)
            row = self._db.execute("SELECT done, at FROM seen WHERE event_id=?", (event_id,)).fetchone()
            if row is not None and row[0] and now - row[1] < self.ttl_s:
                return False
            # Absent, expired, or begun by a process that is gone: handled (again) now.
            self._write("INSERT OR REPLACE INTO seen VALUES (?, 0, ?)", (event_id, now))
            self._mine.add(event_id)
            return True

    def finish(self, event_id: str, *, handled: bool) -> None:
        """handled=False (the handler failed) lets Slack's next retry of it through."""
        with self._lock:
            self._mine.discard(event_id)
            if handled:
                self._write("UPDATE seen SET done=1, at=? WHERE event_id=?", (self._clock(), event_id))
            else:
                self._write("DELETE FROM seen WHERE event_id=?", (event_id,))

    def _write(self, statement: str, values: tuple[object, ...]) -> None:
        # A full or read-only data dir must not stop the event: its handler then answers the person
        # (the service refuses new work with a sentence); only the drop of a later redelivery is lost.
        try:
            self._db.execute(statement, values)
        except sqlite3.OperationalError as exc:
            if storage_error(exc) is None:
                raise
            log.warning("slack: event ids cannot be recorded, the data dir cannot be written: %s", exc)

    def _purge(self, now: float) -> None:
        if now - self._last_purge >= _PURGE_EVERY_S:
            self._last_purge = now
            self._write("DELETE FROM seen WHERE at < ?", (now - self.ttl_s,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["DEFAULT_TTL_S", "SeenEvents"]
