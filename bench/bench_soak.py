"""Soak: many notes through the service's journaled path, watching what the process holds as it goes.

The 32-note burst of bench/bench_batching.py (the shared speech cut at pauses and espeak-ng sentences)
is submitted again and again, one burst at a time, through `TranscriptionService.submit()` (journal,
scheduler, batching, quality pass, delivery), on a fresh data dir with the cache off
(CHATSCRIBE_CACHE_MAX_MB=0), `base` int8 on the CPU. After every burst: resident memory, open file
descriptors, threads, and the size of the journal and cache files. Targets: resident memory after the
first 100 notes grows by less than 50 MB, open descriptors and threads do not grow, the journal holds
one small row per answered note within its retention and the cache file stays within its limit.

    python -m bench.bench_soak [--notes 2000] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.report import MODELS_DIR, format_machine, machine_info, mark, require_audio, table, write_section

MAX_GROWTH_MB = 50.0
WAL_MB = 4.2
"""SQLite checkpoints its write-ahead log at 1,000 pages (4 MB): the log is bounded by that."""
AFTER_NOTES = 100


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1024**2


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return threading.active_count()


def _size_mb(folder: Path, patterns: tuple[str, ...]) -> float:
    return sum(p.stat().st_size for pattern in patterns for p in folder.rglob(pattern) if p.is_file()) / 1024**2


class _Answers:
    """The platform side: records which jobs were answered (each counted once) and how many with an error."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.answered: set[str] = set()
        self.errors = 0

    def fetcher(self, reference: Any) -> Any:
        data = self.files[reference["file"]]

        async def fetch(limit: int) -> bytes:
            return data

        return fetch

    async def progress(self, job: Any, update: Any) -> None:
        pass

    async def deliver(self, job: Any, outcome: Any, receipt: Any) -> None:
        await receipt.part_sent()
        if job.id in self.answered:
            return
        if isinstance(outcome, Exception):
            self.errors += 1
        self.answered.add(job.id)


async def _soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.bench_batching import make_clips
    from chatscribe.core.config import Settings
    from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
    from chatscribe.core.engines.models import resolve_model
    from chatscribe.core.errors import ChatscribeError
    from chatscribe.core.media import MediaRequest
    from chatscribe.core.service import TranscriptionService

    clips = make_clips(work / "notes")[: 8 if args.quick else None]
    files = {c.name: c.path.read_bytes() for c in clips}
    engine = FasterWhisperEngine(resolve_model("base", MODELS_DIR), device="cpu")
    data_dir = work / "data"
    settings = Settings(_env_file=None, data_dir=data_dir, model="base", device="cpu",  # type: ignore[call-arg]
                        cache_max_mb=0, user_rate="", queue_max=1000)
    answers = _Answers(files)
    samples: list[dict[str, float]] = []
    started = time.perf_counter()
    async with TranscriptionService(settings=settings, engine=engine) as service:
        service.register("soak", answers)
        sent = 0
        refused = 0
        accepted: set[str] = set()
        while sent < args.notes:
            burst = clips[: min(len(clips), args.notes - sent)]
            for i, clip in enumerate(burst):
                data = files[clip.name]

                async def fetch(limit: int, data: bytes = data) -> bytes:
                    return data

                try:
                    job = await service.submit(MediaRequest(
                        platform="soak", chat_id=f"chat{i % 8}", user_id=f"user{i % 8}", fetch=fetch, kind="voice",
                        size_bytes=len(data), file_name=clip.name, reference={"file": clip.name},
                    ))
                except ChatscribeError as exc:  # refused at the door: sent, never answered
                    refused += 1
                    print(f"note {sent + i + 1} refused: {exc!r}", flush=True)
                else:
                    accepted.add(job.id)
            sent += len(burst)
            # Every accepted job has run to its end: answered, or its delivery given up. What the platform
            # side recorded is then counted against what was sent, so a note that is never answered shows.
            await service.wait_idle()
            answered = len(accepted & answers.answered)
            samples.append({"notes": sent, "answered": answered, "rss_mb": _rss_mb(), "fds": _fds(),
                            "threads": _threads(),
                            "journal_mb": _size_mb(data_dir, ("jobs.sqlite3",)),
                            "journal_wal_mb": _size_mb(data_dir, ("jobs.sqlite3-wal",)),
                            "cache_mb": _size_mb(data_dir, ("cache.sqlite3",)),
                            "cache_wal_mb": _size_mb(data_dir, ("cache.sqlite3-wal",)),
                            "s": time.perf_counter() - started})
            print(f"{sent} notes: {samples[-1]}", flush=True)
    return {"samples": samples, "errors": answers.errors, "refused": refused,
            "wall_s": time.perf_counter() - started,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "burst": len(clips)}


def _render(args: argparse.Namespace, info: dict[str, str], result: dict[str, Any]) -> str:
    samples = result["samples"]
    base = next((s for s in samples if s["notes"] >= AFTER_NOTES), samples[0])
    last = samples[-1]
    growth = last["rss_mb"] - base["rss_mb"]
    fds_flat = last["fds"] <= base["fds"]
    threads_flat = last["threads"] <= base["threads"]
    unanswered = last["notes"] - last["answered"]
    checks = [
        [f"resident memory growth after the first {AFTER_NOTES} notes", f"< {MAX_GROWTH_MB:.0f} MB",
         f"{growth:+.1f} MB ({base['rss_mb']:.0f} → {last['rss_mb']:.0f} MB)", mark(growth < MAX_GROWTH_MB)],
        ["open file descriptors", "flat", f"{base['fds']} → {last['fds']}", mark(fds_flat)],
        ["threads", "flat", f"{base['threads']} → {last['threads']}", mark(threads_flat)],
        ["cache (CHATSCRIBE_CACHE_MAX_MB=0: no transcript kept; the links of conversations to content are)",
         "< 1 kB a note, log ≤ 4 MB",
         f"{last['cache_mb']:.2f} MB ({last['cache_mb'] * 1024 / max(1, last['notes']):.2f} kB a note), "
         f"log {last['cache_wal_mb']:.2f} MB",
         mark(last["cache_mb"] * 1024 / max(1, last["notes"]) < 1.0 and last["cache_wal_mb"] <= WAL_MB)],
        ["journal (answered rows kept CHATSCRIBE_JOB_RETENTION_H=24, ids only)", "< 4 kB a note, log ≤ 4 MB",
         f"{last['journal_mb']:.2f} MB for {last['notes']} notes "
         f"({last['journal_mb'] * 1024 / max(1, last['notes']):.2f} kB a note), log {last['journal_wal_mb']:.2f} MB",
         mark(last["journal_mb"] * 1024 / max(1, last["notes"]) < 4.0 and last["journal_wal_mb"] <= WAL_MB)],
        ["notes without an answer (sent − answered; refused at submit), errors", "0, 0",
         f"{unanswered} ({last['notes']} − {last['answered']}; {result['refused']} refused), {result['errors']}",
         mark(unanswered == 0 and result["errors"] == 0)],
    ]
    step = max(1, len(samples) // 10)
    shown = samples[::step] + ([samples[-1]] if samples[-1] is not samples[::step][-1] else [])
    rows = [[f"{s['answered']} of {s['notes']}", f"{s['s']:.0f} s", f"{s['rss_mb']:.0f} MB", str(s["fds"]),
             str(s["threads"]),
             f"{s['journal_mb']:.2f} + {s['journal_wal_mb']:.2f} MB",
             f"{s['cache_mb']:.2f} + {s['cache_wal_mb']:.2f} MB"] for s in shown]
    return "\n\n".join([
        "## Soak: notes through the service, one burst after another (`base`, int8, CPU)",
        f"{last['notes']} notes: the {result['burst']}-note burst of bench_batching submitted "
        f"{len(samples)} times through `TranscriptionService.submit()` (journal, scheduler, batching, "
        "quality pass, delivery) from 8 chats, each burst answered before the next, on a fresh data dir "
        f"with the cache off (CHATSCRIBE_CACHE_MAX_MB=0). Took {result['wall_s']:.0f} s; peak RSS "
        f"{result['peak_mb']:.0f} MB.",
        table(["check", "goal", "measured", ""], checks),
        table(["notes answered of sent", "time", "RSS", "open fds", "threads", "journal + its log",
               "cache + its log"], rows),
        "### Machine\n\n" + format_machine(info),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=2000, help="how many notes in all (the burst repeated)")
    parser.add_argument("--quick", action="store_true", help="an 8-note burst, 48 notes: checks the script")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.notes = min(args.notes, 48)
    require_audio()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesise the notes: apt-get install -y espeak-ng")
    info = machine_info()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        result = asyncio.run(_soak(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = _render(args, info, result)
    print(markdown)
    if not args.no_write:
        write_section("soak", markdown)


if __name__ == "__main__":
    main()
