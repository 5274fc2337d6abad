"""Which SQLite failures mean the data dir cannot be written, shared by the journal, cache and preferences.

A full disk gives SQLITE_FULL; a file system turned read-only (ext4 after an I/O error, a read-only
volume) gives SQLITE_READONLY, SQLITE_IOERR_WRITE or SQLITE_CANTOPEN. Those are conditions of the
machine, not bugs: they are reported with a sentence and retried, never raised as tracebacks.
"""

from __future__ import annotations

import sqlite3

from .errors import StorageUnavailable

_UNWRITABLE = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")


def storage_error(exc: sqlite3.Error, *, what: str = "take new recordings") -> StorageUnavailable | None:
    """The user-facing error for `exc` when it means the storage cannot be written, else None."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        return StorageUnavailable(full=True, what=what, detail=str(exc))
    if name.startswith(_UNWRITABLE):
        return StorageUnavailable(full=False, what=what, detail=str(exc))
    return None


__all__ = ["storage_error"]
