"""Per-chat preferences (language, format, auto-transcribe, …) in SQLite, surviving restarts.

Platform-neutral: a chat is (platform, chat id) and a preference is a short string value. The
conversation settings people change with commands (core/settings.py) are read and changed through
`settings` and `change`; a bot may keep its own bookkeeping keys here too (Telegram's update offset).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .private import private_db
from .settings import ConversationSettings, SettingChange
from .storage import storage_error


class Preferences:
    def __init__(self, path: Path) -> None:
        private_db(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # forgotten settings are overwritten on disk
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS preferences (platform TEXT NOT NULL, chat_id TEXT NOT NULL, "
            "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (platform, chat_id, key))"
        )

    def get_all(self, platform: str, chat_id: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM preferences WHERE platform=? AND chat_id=?", (platform, chat_id)
            ).fetchall()
        return dict(rows)

    def get(self, platform: str, chat_id: str, key: str, default: str | None = None) -> str | None:
        return self.get_all(platform, chat_id).get(key, default)

    def set(self, platform: str, chat_id: str, key: str, value: str | None) -> None:
        """Store a value; None removes it (back to the default). StorageUnavailable when it cannot be saved."""
        with self._saving():
            self._store(platform, chat_id, key, value)

    def update(self, platform: str, chat_id: str, key: str, change: Callable[[str | None], str | None]) -> None:
        """Read a value, change it and store the result in one transaction, so that two notes of a chat
        finishing at once (or two processes sharing the data dir) cannot lose each other's change.

        COMMIT is inside the try: whatever fails, the connection leaves the transaction, so the next
        set() or update() on it works. SQLite has already rolled back by itself when COMMIT fails for a
        full disk or an I/O error, so the ROLLBACK is only run while a transaction is still open."""
        with self._saving():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT value FROM preferences WHERE platform=? AND chat_id=? AND key=?",
                                       (platform, chat_id, key)).fetchone()
                stored = None if row is None else str(row[0])
                value = change(stored)
                if value != stored:
                    self._store(platform, chat_id, key, value)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _saving(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.OperationalError as exc:
                refusal = storage_error(exc, what="save settings")
                if refusal is None:
                    raise
                raise refusal from exc

    def _store(self, platform: str, chat_id: str, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM preferences WHERE platform=? AND chat_id=? AND key=?",
                             (platform, chat_id, key))
        else:
            self._db.execute("INSERT OR REPLACE INTO preferences VALUES (?, ?, ?, ?)", (platform, chat_id, key, value))

    def settings(self, platform: str, *scopes: str) -> ConversationSettings:
        """The settings in force where `scopes` meet, broadest first (a server, then its channel)."""
        return ConversationSettings.from_stored(*(self.get_all(platform, scope) for scope in scopes))

    def change(self, platform: str, scope: str, change: SettingChange) -> None:
        """Store one parsed setting (None: back to the default). StorageUnavailable when it cannot be saved."""
        self.set(platform, scope, change.key, change.value)

    def forget(self, platform: str, chat_id: str) -> int:
        """Delete every setting of the chat (back to the defaults); returns how many there were."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM preferences WHERE platform=? AND chat_id=?", (platform, chat_id)
            )
        return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()
