"""A content-addressed transcript cache in SQLite (WAL), bounded in size with LRU eviction.

Keyed by sha256 of the media bytes + model + options; platform file ids (Telegram's file_unique_id,
a Slack file id) are aliases of a content hash, so a known file is answered without downloading it.
Sync methods: callers run them off the event loop. A corrupt file is moved aside, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    content_hash TEXT NOT NULL,
    variant TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_used REAL NOT NULL,
    PRIMARY KEY (content_hash, variant)
);
CREATE INDEX IF NOT EXISTS transcripts_lru ON transcripts(last_used);
CREATE TABLE IF NOT EXISTS aliases (
    platform TEXT NOT NULL,
    file_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (platform, file_id)
);
"""


class TranscriptCache:
    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._last_used = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked or unopenable: not corrupt, not ours to move
                raise
            self._move_aside(exc)
            return _connect(self.path)

    def _move_aside(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.time_ns()}")
        log.warning("transcript cache %s is unreadable (%s); moved it to %s and started afresh",
                    self.path, exc, aside)
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Corruption found in use (a damaged page read only now): start afresh instead of failing the job."""
        if isinstance(exc, sqlite3.OperationalError):
            raise exc
        self._db.close()
        self._move_aside(exc)
        self._db = _connect(self.path)

    def _now(self) -> float:
        # Strictly increasing, so that two uses within one clock tick still order least-recently-used.
        self._last_used = max(time.time(), self._last_used + 1e-6)
        return self._last_used

    def get(self, content_hash: str, variant: str) -> Transcript | None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT body FROM transcripts WHERE content_hash=? AND variant=?", (content_hash, variant)
                ).fetchone()
                if row is None:
                    return None
                self._db.execute(
                    "UPDATE transcripts SET last_used=? WHERE content_hash=? AND variant=?",
                    (self._now(), content_hash, variant),
                )
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
        try:
            transcript = decode_transcript(json.loads(row[0]))
        except (ValueError, TypeError, KeyError) as exc:
            # Written by a version with another Transcript shape: a miss, and the run refreshes it.
            log.info("cached transcript %s/%s no longer decodes (%s); ignoring it", content_hash, variant, exc)
            return None
        return dataclasses.replace(transcript, from_cache=True)

    def hash_for(self, platform: str, file_id: str) -> str | None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT content_hash FROM aliases WHERE platform=? AND file_id=?", (platform, file_id)
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
        return row[0] if row else None

    def put(self, content_hash: str, variant: str, transcript: Transcript) -> None:
        body = json.dumps(encode_transcript(transcript), ensure_ascii=False)
        size = len(body.encode())  # the bound is in bytes; transcripts are often not ASCII
        if size > self.max_bytes:
            return
        with self._lock:
            try:
                with self._db:
                    self._db.execute(
                        "INSERT OR REPLACE INTO transcripts VALUES (?, ?, ?, ?, ?)",
                        (content_hash, variant, body, size, self._now()),
                    )
                    self._evict()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def alias(self, platform: str, file_id: str, content_hash: str) -> None:
        with self._lock:
            try:
                with self._db:
                    self._db.execute(
                        "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (platform, file_id, content_hash)
                    )
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def size_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0])

    def entries(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _evict(self) -> None:
        total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0]
        if total <= self.max_bytes:
            return
        excess = total - self.max_bytes
        victims = []
        for content_hash, variant, size in self._db.execute(
            "SELECT content_hash, variant, size FROM transcripts ORDER BY last_used"
        ):
            victims.append((content_hash, variant))
            excess -= size
            if excess <= 0:
                break
        self._db.executemany("DELETE FROM transcripts WHERE content_hash=? AND variant=?", victims)
        self._db.execute(
            "DELETE FROM aliases WHERE content_hash NOT IN (SELECT content_hash FROM transcripts)"
        )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    db.execute("SELECT COUNT(*) FROM transcripts").fetchone()
    return db


def encode_transcript(transcript: Transcript) -> dict[str, Any]:
    data = dataclasses.asdict(transcript)
    data.pop("dropped")
    data.pop("from_cache")
    for segment in data["segments"]:
        segment["flags"] = sorted(segment["flags"])
    return data


def decode_transcript(data: dict[str, Any]) -> Transcript:
    data = dict(data)
    segments = tuple(
        Segment(**{**s, "words": tuple(Word(**w) for w in s["words"]), "flags": frozenset(s["flags"])})
        for s in data.pop("segments")
    )
    return Transcript(segments=segments, **data)
