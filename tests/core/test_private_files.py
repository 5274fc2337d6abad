"""Data files are private to the service user: the data dir 0700, every SQLite file (and -wal/-shm) 0600."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatscribe.core.cache import TranscriptCache
from chatscribe.core.config import Settings
from chatscribe.core.keys import TranscriptKey
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Segment, Transcript


@pytest.fixture(autouse=True)
def wide_umask() -> Iterator[None]:
    """The stores must not rely on the CLI's umask: a library user or a test runs under 022."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _transcript() -> Transcript:
    return Transcript(segments=(Segment(0.0, 1.0, " private words"),), language="en", language_probability=1.0,
                      duration_s=1.0, model="tiny.en")


async def test_a_service_on_a_fresh_data_dir_writes_only_private_files(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    settings = Settings(_env_file=None, data_dir=data)  # type: ignore[call-arg]
    svc = TranscriptionService(settings=settings)
    svc.cache.put(TranscriptKey("tiny.en", "v", "0" * 64), _transcript())
    svc.preferences.set("fake", "chat", "language", "de")
    files = sorted(p for p in data.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert {"cache.sqlite3", "jobs.sqlite3", "preferences.sqlite3", "cache.sqlite3-wal"} <= names
    assert _mode(data) == 0o700
    for path in files:
        assert _mode(path) == 0o600, f"{path.name} is {oct(_mode(path))}"
    await svc.aclose()


def test_files_of_an_older_version_are_narrowed_at_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    with sqlite3.connect(data / "cache.sqlite3") as db:  # made 0644 by a version without this rule
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
    os.chmod(data, 0o755)
    assert _mode(data / "cache.sqlite3") == 0o644
    svc = TranscriptionService(settings=Settings(_env_file=None, data_dir=data))  # type: ignore[call-arg]
    assert _mode(data) == 0o700
    assert _mode(data / "cache.sqlite3") == 0o600
    for store in (svc.cache, svc.journal, svc.preferences):
        store.close()


def test_a_cache_started_afresh_after_corruption_is_private_too(tmp_path: Path) -> None:
    path = tmp_path / "data" / "cache.sqlite3"
    path.parent.mkdir()
    path.write_bytes(b"not a database" * 500)
    cache = TranscriptCache(path, max_bytes=1_000_000)
    cache.put(TranscriptKey("tiny.en", "v", "1" * 64), _transcript())
    assert _mode(path) == 0o600
    assert _mode(Path(f"{path}-wal")) == 0o600
