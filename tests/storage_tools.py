"""Real small file systems for the data dir: a tmpfs filled to ENOSPC and emptied on demand, and an ext4
image that turns read-only under the running process as a failing disk does.

SQLite then fails exactly as in production ("database or disk is full", "disk I/O error").
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

    def read_only(self) -> None:
        """Remount read-only (refused by the kernel while a process has a file open for writing)."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


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


class BrokenDisk:
    """A small ext4 image, loop-mounted with errors=remount-ro: `fail()` makes the kernel record a file
    system error, so the mount turns read-only under the running process, as a disk with I/O errors does.
    Only unmounting, e2fsck and mounting again (`repair()`) make it writable again."""

    def __init__(self, image: Path, path: Path) -> None:
        self.image = image
        self.path = path

    def mount(self) -> None:
        _run_or_skip(["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path)])

    def fail(self) -> None:
        device = Path(_run_or_skip(["findmnt", "-n", "-o", "SOURCE", str(self.path)])).name
        trigger = Path(f"/sys/fs/ext4/{device}/trigger_fs_error")
        if not trigger.exists():
            pytest.skip(f"this kernel cannot simulate an ext4 error ({trigger} is missing)")
        trigger.write_text("chatscribe storage test\n")
        options = _run_or_skip(["findmnt", "-n", "-o", "OPTIONS", str(self.path)])
        # Recent kernels keep "rw" in the options and add "emergency_ro"; older ones show "ro".
        flags = options.split(",")
        assert "ro" in flags or "emergency_ro" in flags, f"the file system did not turn read-only: {options}"

    def repair(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True)
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, check=False)  # 1: fixed
        self.mount()


@contextlib.contextmanager
def mounted_broken_disk(folder: Path, *, size_mb: int = 16) -> Iterator[BrokenDisk]:
    image, path = folder / "disk.img", folder / "data"
    path.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as out:
        out.truncate(size_mb << 20)
    _run_or_skip(["mkfs.ext4", "-q", "-F", str(image)])
    disk = BrokenDisk(image, path)
    disk.mount()
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _run_or_skip(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        pytest.skip(f"{command[0]} is not installed here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"`{' '.join(command)}` was refused here (needs root and loop devices): {done.stderr.strip()}")
    return done.stdout.strip()
