"""A real small file system for the data dir: a tmpfs of a few MB, filled to ENOSPC and emptied on demand.

Filling it makes SQLite fail exactly as on a full disk in production ("database or disk is full").
Mounting needs root (CI runs as root); where the kernel refuses the mount, the test skips and says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A tmpfs of a few MB mounted on `path`, filled and emptied on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ballast = path / "ballast"

    def fill(self) -> None:
        """Write until the file system has no byte left (smaller and smaller writes, unbuffered)."""
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = 1 << 20
            while chunk:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink()


@contextlib.contextmanager
def mounted_small_disk(path: Path, *, size: str = "8m") -> Iterator[SmallDisk]:
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                           capture_output=True, text=True, check=False)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the data dir here (needs root): {mount.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
