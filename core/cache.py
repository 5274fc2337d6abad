"""A content-addressed transcript cache in SQLite (WAL), bounded in size (LRU) and in age (TTL).

Keyed by TranscriptKey (core/keys.py): sha256 of the media bytes + model + options. Each conversation
that brought a file is linked to its content hash (`links`), with the platform file id (Telegram's
file_unique_id, a Slack file id) when there is one, so a known file is answered without downloading
it. A link belongs to one conversation: a file id is looked up only among the links of the
conversation asking (or links made outside any conversation, chat '').
That is what makes `forget` honest while the entries stay shared:

- forget(platform, chat) deletes that conversation's links; an entry no conversation links to any more
  is deleted outright (for every model and options). An entry another conversation also brought stays
  for that one; the forgetting conversation can no longer reach it by its file id, only by sending the
  media again (whose bytes hash to the entry: having the media is the right to its transcript).

A transcript is kept at most `ttl_s` after it was made: older ones are a miss on read and are purged
when the cache opens and then at most every PURGE_EVERY_S while it is used.
Sync methods: callers run them off the event loop. A corrupt file is moved aside, never fatal. A data
dir that cannot be written (disk full, read-only) only stops the storing: no answer depends on it. Once
closed, the cache answers misses and stores nothing (a run still finishing while the process stops).
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .codecs import dumps_outcome, loads_transcript
from .keys import TranscriptKey
from .private import private_db
from .storage import storage_error
from .transcript import Transcript

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    content_hash TEXT NOT NULL,
    model_options TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_used REAL NOT NULL,
    created REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (content_hash, model_options)
);
CREATE INDEX IF NOT EXISTS transcripts_lru ON transcripts(last_used);
CREATE TABLE IF NOT EXISTS links (
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (platform, chat_id, file_id, content_hash)
);
CREATE INDEX IF NOT EXISTS links_hash ON links(content_hash);
"""
PURGE_EVERY_S = 3600.0
"""How often, at most, a cache in use looks for transcripts past their TTL (reads skip them anyway)."""
NO_CHAT = ""
"""The chat of a link made outside any conversation (the HTTP API, the CLI, a file seeded by hand)."""


class TranscriptCache:
    def __init__(self, path: Path, *, max_bytes: int, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`ttl_s`: the most seconds a transcript is kept after it was made (None: no age limit).
        `clock`: wall-clock seconds; tests pass their own to age entries without waiting."""
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_used = 0.0
        self._next_purge = 0.0
        self._unwritable = False
        self._closed = False
        self._db = self._open()
        with self._lock:
            self._purge_expired()

    def _open(self) -> sqlite3.Connection:
        private_db(self.path)
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            if not corrupt(exc):  # locked or unopenable: not ours to move
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
        private_db(self.path)

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Corruption found in use (a damaged page read only now): start afresh instead of failing the job.

        Storage that cannot be written is not corruption: the write is skipped and the job goes on.
        """
        if storage_error(exc) is not None:
            if not self._unwritable:  # once per outage, not once per job
                self._unwritable = True
                log.warning("transcript cache %s cannot be written (%s); answers are not cached until it can",
                            self.path, exc)
            return
        if not corrupt(exc):  # e.g. a closed connection, a lock held too long: the file itself is sound
            raise exc
        self._db.close()
        self._move_aside(exc)
        self._db = _connect(self.path)

    def _now(self) -> float:
        # Strictly increasing, so that two uses within one clock tick still order least-recently-used.
        self._last_used = max(self._clock(), self._last_used + 1e-6)
        return self._last_used

    def _cutoff(self) -> float:
        """Transcripts made before this are past their TTL."""
        return self._clock() - self.ttl_s if self.ttl_s is not None else float("-inf")

    def get(self, key: TranscriptKey) -> Transcript | None:
        with self._lock:
            if self._closed:
                return None
            try:
                row = self._db.execute(
                    "SELECT body FROM transcripts WHERE content_hash=? AND model_options=? AND created>=?",
                    (key.content_hash, key.model_options, self._cutoff()),
                ).fetchone()
                if row is None:
                    return None
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
            try:  # a hit is a hit even when its use cannot be recorded (storage full)
                self._db.execute(
                    "UPDATE transcripts SET last_used=? WHERE content_hash=? AND model_options=?",
                    (self._now(), key.content_hash, key.model_options),
                )
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
        try:
            transcript = loads_transcript(row[0])
        except (ValueError, TypeError, KeyError) as exc:
            # Written by a version with another Transcript shape: a miss, and the run refreshes it.
            log.info("cached transcript %s no longer decodes (%s); ignoring it", key, exc)
            return None
        return dataclasses.replace(transcript, from_cache=True)

    def hash_for(self, platform: str, file_id: str, chat_id: str = NO_CHAT) -> str | None:
        """The content hash this conversation (or no conversation) knows the platform file id by."""
        with self._lock:
            if self._closed:
                return None
            try:
                row = self._db.execute(
                    "SELECT content_hash FROM links WHERE platform=? AND file_id=? AND chat_id IN (?, ?) "
                    "ORDER BY created DESC LIMIT 1", (platform, file_id, chat_id, NO_CHAT)
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
        return row[0] if row else None

    def put(self, key: TranscriptKey, transcript: Transcript) -> None:
        body = dumps_outcome(transcript)
        size = len(body.encode())  # the bound is in bytes; transcripts are often not ASCII
        if size > self.max_bytes:
            return
        with self._lock:
            if self._closed:
                log.debug("transcript cache %s is closed: %s not stored", self.path, key)
                return
            try:
                with self._db:
                    now = self._now()
                    self._db.execute(
                        "INSERT OR REPLACE INTO transcripts (content_hash, model_options, body, size, last_used, "
                        "created) VALUES (?, ?, ?, ?, ?, ?)",
                        (key.content_hash, key.model_options, body, size, now, now),
                    )
                    self._evict()
                    if now >= self._next_purge:
                        self._purge_expired()
                self._unwritable = False
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def alias(self, platform: str, file_id: str | None, content_hash: str, chat_id: str = NO_CHAT) -> None:
        """Link a conversation to the content it brought, by the platform's file id when there is one."""
        with self._lock:
            if self._closed:
                return
            try:
                with self._db:
                    self._db.execute(
                        "INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?, ?)",
                        (platform, chat_id, file_id or "", content_hash, self._clock()),
                    )
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def forget(self, platform: str, chat_id: str) -> int:
        """Unlink a conversation; delete the entries nobody else links to. Returns the recordings unlinked."""
        with self._lock:
            try:
                with self._db:
                    return len(self._unlink(platform, chat_id))
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return 0

    def _unlink(self, platform: str, chat_id: str) -> list[str]:
        """The content hashes this conversation was linked to; those now unlinked by anyone are deleted."""
        hashes = [row[0] for row in self._db.execute(
            "SELECT DISTINCT content_hash FROM links WHERE platform=? AND chat_id=?", (platform, chat_id))]
        self._db.execute("DELETE FROM links WHERE platform=? AND chat_id=?", (platform, chat_id))
        for content_hash in hashes:
            if self._db.execute("SELECT 1 FROM links WHERE content_hash=? LIMIT 1", (content_hash,)).fetchone():
                continue  # another conversation brought it too: it stays theirs
            self._db.execute("DELETE FROM transcripts WHERE content_hash=?", (content_hash,))
        return hashes

    def purge_expired(self) -> int:
        """Delete transcripts past their TTL now (also done at open and while in use); returns how many."""
        with self._lock:
            try:
                with self._db:
                    return self._purge_expired()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return 0

    def _purge_expired(self) -> int:
        self._next_purge = self._clock() + PURGE_EVERY_S
        if self.ttl_s is None:
            return 0
        cutoff = self._cutoff()
        gone = self._db.execute("DELETE FROM transcripts WHERE created<?", (cutoff,)).rowcount
        # A link younger than the TTL may belong to a transcription still running: it stays.
        self._db.execute("DELETE FROM links WHERE created<? AND content_hash NOT IN "
                         "(SELECT content_hash FROM transcripts)", (cutoff,))
        if gone:
            log.info("transcript cache: %d transcripts past their %.0f h TTL deleted", gone, self.ttl_s / 3600)
        return int(gone)

    def size_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0])

    def entries(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM transcripts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def _evict(self) -> None:
        total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM transcripts").fetchone()[0]
        if total <= self.max_bytes:
            return
        excess = total - self.max_bytes
        victims = []
        for content_hash, model_options, size in self._db.execute(
            "SELECT content_hash, model_options, size FROM transcripts ORDER BY last_used"
        ):
            victims.append((content_hash, model_options))
            excess -= size
            if excess <= 0:
                break
        self._db.executemany("DELETE FROM transcripts WHERE content_hash=? AND model_options=?", victims)
        # Only the victims' links: others may belong to transcriptions that have not stored their result yet.
        self._db.executemany(
            "DELETE FROM links WHERE content_hash=? AND content_hash NOT IN (SELECT content_hash FROM transcripts)",
            [(content_hash,) for content_hash, _ in victims],
        )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA secure_delete=ON")  # forgotten and expired transcripts are overwritten, not left in free pages
    db.executescript(_SCHEMA)
    _migrate(db)
    db.execute("SELECT COUNT(*) FROM transcripts").fetchone()
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Files written before entries had an age, links a conversation, and `model_options` its name."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(transcripts)")}
    if "variant" in columns:  # the model-and-options column's earlier name
        db.execute("ALTER TABLE transcripts RENAME COLUMN variant TO model_options")
    if "created" not in columns:
        db.execute("ALTER TABLE transcripts ADD COLUMN created REAL NOT NULL DEFAULT 0")
        db.execute("UPDATE transcripts SET created=last_used")  # the best age known for them
    # Old file id aliases belonged to no conversation, so no forget could remove them: dropped (each costs
    # one download the next time its file is sent).
    db.execute("DROP TABLE IF EXISTS aliases")



def corrupt(exc: sqlite3.DatabaseError) -> bool:
    """The file itself is damaged (or is no database), as opposed to a lock, a full disk or a closed
    connection (sqlite3.ProgrammingError): only a damaged file is moved aside."""
    code = getattr(exc, "sqlite_errorcode", None)  # None: raised by Python's sqlite3 module, not by SQLite
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
