"""Shared helpers for benchmark reports: the machine they ran on, tables, and docs/benchmarks.md sections.

Each benchmark owns one section of docs/benchmarks.md, delimited by `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`; `write_section` replaces only that section, so benchmarks can run (and be re-run)
independently without clobbering each other's results.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import importlib.metadata
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
AUDIO_DIR = Path(os.environ.get("CHATSCRIBE_TEST_AUDIO", ROOT.parent / "shared" / "audio"))
MODELS_DIR = Path(tempfile.gettempdir()) / "chatscribe-bench-models"
"""A data dir kept between runs, so the bundled `base` is assembled from its two parts only once."""

_INTRO = """# Benchmarks

chatscribe against plain faster-whisper, each side measured in the same run on the same machine.
Every section below is written by a script in `bench/` and names its machine, versions and command;
`bench/run_all.sh` re-runs all of them (see `bench/README.md`). Numbers from a busy machine are noisy:
compare the two sides of one table, not tables from different machines.
"""


def require_audio() -> None:
    """Stop with one clear sentence when the shared audio is not where the benchmarks look."""
    if not (AUDIO_DIR / "references.json").is_file():
        raise SystemExit(f"The shared test audio is not at {AUDIO_DIR}: put it there (../shared/audio beside "
                         "the project) or set CHATSCRIBE_TEST_AUDIO to its folder.")


def write_section(name: str, markdown: str, *, doc: Path = DOC) -> None:
    """Replace the `<!-- bench:name -->` section of docs/benchmarks.md (appended when missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    doc.parent.mkdir(parents=True, exist_ok=True)
    with _locked(doc):
        text = doc.read_text(encoding="utf-8") if doc.exists() else _INTRO
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        partial = doc.with_name(f".{doc.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, doc)


@contextlib.contextmanager
def _locked(doc: Path) -> Iterator[None]:
    # Benchmarks may finish at the same time; without the lock one section update could undo another.
    # The lock is on the folder, so no lock file is left behind in the working tree.
    fd = os.open(doc.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def machine_info() -> dict[str, str]:
    """What a reader needs to judge the numbers: hardware, load, versions, date and the command."""
    return {
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count() or "?"),
        "Memory": _memory(),
        "Load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "faster-whisper": _version("faster-whisper"),
        "ctranslate2": _version("ctranslate2"),
        "PyAV": _version("av"),
        "Date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "Command": command_line(),
    }


def format_machine(info: dict[str, str]) -> str:
    """machine_info() as a compact markdown list."""
    return "\n".join(f"- {key}: `{value}`" if key == "Command" else f"- {key}: {value}" for key, value in info.items())


def command_line() -> str:
    """How this benchmark was started, as a command one can paste (`python -m bench.x …`)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mark(passed: bool) -> str:
    return "✅ pass" if passed else "❌ fail"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), the same as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "?"
