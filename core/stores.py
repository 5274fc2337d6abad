"""The service's stores in its data dir: transcript cache, job journal, per-conversation preferences.

Opened together, so that a data dir that cannot be used (read-only, full, no permission) is one sentence
at start (DataDirUnavailable), never a traceback.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .cache import TranscriptCache
from .config import Settings
from .errors import DataDirUnavailable
from .jobs.journal import Journal
from .preferences import Preferences
from .private import private_dir


@dataclass(frozen=True, slots=True)
class Stores:
    cache: TranscriptCache
    journal: Journal
    preferences: Preferences

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        data_dir = settings.data_dir
        try:
            private_dir(data_dir)
            return cls(
                cache=TranscriptCache(data_dir / "cache.sqlite3", max_bytes=int(settings.cache_max_mb * 1_000_000),
                                      ttl_s=settings.cache_ttl_s),
                journal=Journal(data_dir / "jobs.sqlite3", retention_s=settings.job_retention_s),
                preferences=Preferences(data_dir / "preferences.sqlite3"),
            )
        except OSError as exc:  # read-only file system, no space, no permission: one sentence, no traceback
            raise DataDirUnavailable(data_dir, exc.strerror or str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise DataDirUnavailable(data_dir, str(exc)) from exc


__all__ = ["Stores"]
