"""Files the service writes are private to the service user: other local users read no transcript.

The CLI sets umask 0077 at start, but a store opened by another entry point (a test, a library user, a
process started under a wider umask) must not depend on that: each store makes its own folder 0700 and
its SQLite file 0600 before SQLite opens it. SQLite gives the -wal and -shm files the mode of the
database file, and files already there from an older version are narrowed here too.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) 0700; an existing folder of ours is narrowed to 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _narrow(path, DIR_MODE)
    return path


def private_db(path: Path) -> Path:
    """Make the SQLite file at `path` (and its -wal/-shm, if there) exist with mode 0600.

    A missing folder is created 0700; an existing one is the caller's (the service narrows its data dir).
    """
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if name.exists():
            _narrow(name, FILE_MODE)
    return path


def _narrow(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except PermissionError:  # not ours (a shared parent such as /var/lib): leave it as it is
        pass
