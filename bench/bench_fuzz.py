"""Thousands of mutated media files through `chatscribe transcribe`: no crash, no traceback, every file answered.

    python -m bench.bench_fuzz [--count 2000] [--first-seed 0] [--quick] [--no-write]
    python -m bench.bench_fuzz --seeds 130 288 --keep /tmp/fuzz   # rebuild (and rerun) the files of a report

Each seed makes one file (bench/fuzz_mutants.py: bit flips, truncations, header edits, container swaps,
splices, hostile wrappers of the shared audio). Three passes over them:

1. decode: every file through `decode_audio` with the real one-hour limit, in a child process that names
   each seed before touching it, so a crash in FFmpeg points at its file. Per-file time and peak memory.
2. cli: every file through the real `chatscribe transcribe --output-dir` (tiny.en, CPU), several hundred
   per invocation. Files run with a short `CHATSCRIBE_MAX_DURATION_S`, so the many mutants that still
   decode are answered "too long" after that much audio instead of costing a transcription each: on two
   CPU cores the whole set through the model would take hours, and what is under test is the reading.
3. full: `chatscribe transcribe` with the default limits on every file that pass 1 could not decode
   (they are answered without the model, through the error paths a short limit would skip) and on a
   sample of the ones it could, which the model transcribes.

A file counts as answered when the CLI names it on stderr with its output file (`path -> out`) or with a
user sentence (`path: I couldn't read...`). Failures: a crash or an exit status other than 0/1, a
traceback or an ERROR log line anywhere in the output, a file not named, an answer that is not a sentence,
an invocation past its time limit, memory past its limit. Each failure prints the seeds that reproduce it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.fuzz_mutants import Mutant, load_corpus, mutant
from bench.report import AUDIO_DIR, format_machine, machine_info, percentile, require_audio, table, write_section

PER_FILE_DECODE_LIMIT_S = 5.0
"""The slowest a single mutant may take to decode (the real files take 20-80 ms)."""
CLI_FILE_BUDGET_S = 2.0
"""Time allowed per file in an invocation of the CLI, on top of the start-up allowance."""
CLI_STARTUP_S = 90.0
RSS_LIMIT_MB = 2000
"""Peak resident memory allowed for one CLI invocation (the model, the decoded audio, the files)."""
SENTENCE = re.compile(r"[A-Z].*[.?!)]$")
NOTES = (
    "No speech detected.",
    "the file ends early (cut short?); this is the speech that is there.",
)
"""What the CLI adds after a transcript was written; not the file's answer."""


@dataclass
class Failure:
    where: str
    what: str
    seeds: list[int]


@dataclass
class Pass:
    name: str
    files: int = 0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    per_file_s: list[float] = field(default_factory=list)
    by_seed: dict[int, str] = field(default_factory=dict)
    slowest: list[tuple[float, int, str]] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.decode_worker:
        return _decode_worker(args.decode_worker, Path(args.audio_dir))
    require_audio()
    corpus = load_corpus(AUDIO_DIR)
    seeds = args.seeds or list(range(args.first_seed, args.first_seed + (60 if args.quick else args.count)))
    with tempfile.TemporaryDirectory(prefix="chatscribe-fuzz-") as scratch:
        work = Path(args.keep or scratch)
        files = _write_mutants(work / "files", seeds, corpus)
        print(f"{len(files)} mutants in {work / 'files'}", file=sys.stderr)
        started = time.monotonic()
        decode = _decode_pass(seeds)
        cli = _cli_pass("cli", work, files, chunk=args.chunk, max_duration_s=args.cli_max_duration)
        # Default limits: every file that does not decode (answered without the model) and a sample of the
        # ones that do (transcribed).
        decodable = [path for path in files if decode.by_seed.get(seed_of(path), "").startswith("decoded")]
        refused = sorted(set(files) - set(decodable))
        sample = decodable[:: max(1, len(decodable) // max(1, args.full))][: args.full]
        full = _cli_pass("full", work, sorted(refused + sample), chunk=args.chunk, max_duration_s=None)
        total_s = time.monotonic() - started
    passes = (decode, cli, full)
    failures = [failure for one in passes for failure in one.failures]
    for failure in failures:
        print(f"FAIL {failure.where}: {failure.what}\n  reproduce: python -m bench.bench_fuzz --seeds "
              + " ".join(map(str, failure.seeds)) + " --keep /tmp/fuzz", file=sys.stderr)
    markdown = _report(passes, seeds, total_s, args)
    print(markdown)
    if not (args.no_write or args.quick or args.seeds):
        write_section("fuzz", markdown)
    return 1 if failures else 0


def _write_mutants(folder: Path, seeds: Sequence[int], corpus: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        one: Mutant = mutant(seed, corpus)
        path = folder / one.name
        path.write_bytes(one.data)
        paths.append(path)
    return paths


def seed_of(path: Path | str) -> int:
    return int(Path(path).name.split("-", 1)[0])


# -- pass 1: decode_audio in a child that names each seed first ---------------------------------------------

def _decode_pass(seeds: Sequence[int]) -> Pass:
    result = Pass("decode (decode_audio, 1 h limit)")
    todo = list(seeds)
    started = time.monotonic()
    while todo:
        done, crashed = _decode_child(todo, result)
        todo = todo[done:]
        if crashed is not None:  # the child died on this seed: note it and go on with the rest
            result.failures.append(Failure("decode", f"decoder process died ({crashed[1]})", [crashed[0]]))
            result.outcomes["crash"] += 1
            todo = todo[1:]
    result.wall_s = time.monotonic() - started
    result.files = len(seeds)
    return result


def _decode_child(seeds: list[int], result: Pass) -> tuple[int, tuple[int, str] | None]:
    command = [sys.executable, "-m", "bench.bench_fuzz", "--audio-dir", str(AUDIO_DIR),
               "--decode-worker", *map(str, seeds)]
    limit = 60 + PER_FILE_DECODE_LIMIT_S * len(seeds)
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             cwd=Path(__file__).resolve().parents[1])
    assert child.stdout is not None
    done = 0
    current: int | None = None
    deadline = time.monotonic() + limit
    for line in child.stdout:
        record = json.loads(line)
        if "start" in record:
            current = record["start"]
            continue
        current = None
        done += 1
        result.outcomes[record["outcome"]] += 1
        result.by_seed[record["seed"]] = record["outcome"]
        result.slowest = sorted([*result.slowest, (record["s"], record["seed"], record["what"])])[-5:]
        result.per_file_s.append(record["s"])
        result.peak_rss_mb = max(result.peak_rss_mb, record["rss_mb"])
        if record["s"] > PER_FILE_DECODE_LIMIT_S:
            result.failures.append(Failure("decode", f"took {record['s']:.1f} s", [record["seed"]]))
        if record["outcome"].startswith("exception"):
            result.failures.append(Failure("decode", record["outcome"], [record["seed"]]))
        if time.monotonic() > deadline:
            child.kill()
            break
    status = child.wait()
    if current is not None:
        return done, (current, f"status {status}")
    return done, None


def _decode_worker(seeds: Sequence[str], audio_dir: Path) -> int:
    from chatscribe.core.errors import ChatscribeError
    from chatscribe.core.media import decode_audio

    corpus = load_corpus(audio_dir)
    for text in seeds:
        seed = int(text)
        one = mutant(seed, corpus)
        data = one.data
        print(json.dumps({"start": seed}), flush=True)
        started = time.perf_counter()
        try:
            outcome = "decoded" if not decode_audio(data, max_duration_s=3600).truncated else "decoded, cut short"
        except ChatscribeError as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzing looks for
            outcome = f"exception {type(exc).__name__}: {exc}"[:300]
        elapsed = time.perf_counter() - started
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seed": seed, "outcome": outcome, "s": round(elapsed, 4), "rss_mb": round(rss_mb),
                          "what": f"{one.operation} of {one.source}"}), flush=True)
    return 0


# -- passes 2 and 3: the real CLI ---------------------------------------------------------------------------

def _cli_pass(name: str, work: Path, files: list[Path], *, chunk: int, max_duration_s: float | None) -> Pass:
    limit = f"{max_duration_s:g} s limit" if max_duration_s else "default limits"
    result = Pass(f"{name} (`chatscribe transcribe`, {limit})", files=len(files))
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHATSCRIBE_")}
    env.update({"CHATSCRIBE_MODEL": "tiny.en", "CHATSCRIBE_DEVICE": "cpu", "CHATSCRIBE_LOG_LEVEL": "INFO",
                "CHATSCRIBE_DATA_DIR": str(work / f"data-{name}")})  # a fresh cache: no answer from a past run
    if max_duration_s:
        env["CHATSCRIBE_MAX_DURATION_S"] = str(max_duration_s)
    cwd = work / f"cwd-{name}"
    cwd.mkdir(parents=True, exist_ok=True)
    # The playlist wrappers name this file: answering with its words would be the leak the whitelist stops.
    (cwd / "local_secret.ogg").write_bytes((AUDIO_DIR / "jfk_voice.ogg").read_bytes())
    started = time.monotonic()
    for at in range(0, len(files), chunk):
        part = files[at : at + chunk]
        _one_invocation(result, part, env, cwd, work / f"out-{name}")
    result.wall_s = time.monotonic() - started
    if files:
        result.per_file_s.append(result.wall_s / len(files))
    return result


def _one_invocation(result: Pass, files: list[Path], env: dict[str, str], cwd: Path, out: Path) -> None:
    seeds = [seed_of(path) for path in files]
    limit_s = CLI_STARTUP_S + CLI_FILE_BUDGET_S * len(files)
    command = [str(Path(sys.executable).with_name("chatscribe")), "transcribe", "--output-dir", str(out),
               *map(str, files)]
    killed = threading.Event()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=cwd)

        def kill() -> None:
            killed.set()
            child.kill()

        timer = threading.Timer(limit_s, kill)
        timer.start()
        _, status, usage = os.wait4(child.pid, 0)  # wait4: this child's own peak RSS
        timer.cancel()
        child.returncode = code = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        text = stdout.read().decode(errors="replace") + stderr.read().decode(errors="replace")
    rss_mb = usage.ru_maxrss / 1024
    if killed.is_set():
        result.failures.append(Failure(result.name, f"past its {limit_s:.0f} s limit", seeds))
    result.peak_rss_mb = max(result.peak_rss_mb, rss_mb)
    if rss_mb > RSS_LIMIT_MB:
        result.failures.append(Failure(result.name, f"peak RSS {rss_mb:.0f} MB", seeds))
    if code not in (0, 1):
        result.failures.append(Failure(result.name, f"exit status {code}: {text[-400:]!r}", seeds))
    for marker in ("Traceback", " ERROR "):
        if marker in text:
            shown = text[max(0, text.find(marker) - 200) : text.find(marker) + 400]
            result.failures.append(Failure(result.name, f"{marker.strip()} in the output: {shown!r}", seeds))
    answers = answers_in(text, files)
    for path, seed in zip(files, seeds, strict=True):
        answer = answers.get(str(path))
        if answer is None:
            result.failures.append(Failure(result.name, f"{path.name} not answered", [seed]))
        elif answer != "transcript" and not SENTENCE.match(answer):
            result.failures.append(Failure(result.name, f"{path.name}: not a sentence: {answer!r}", [seed]))
        else:
            result.outcomes[_kind_of(answer)] += 1


def _kind_of(answer: str) -> str:
    """The answer without its figures, so that "too long (11 s)" and "too long (60 s)" count together."""
    return re.sub(r"\d[\d.,]*", "N", answer.split(": ")[0])[:70]


def answers_in(text: str, files: Sequence[Path]) -> dict[str, str]:
    """Each file's answer in the CLI's stderr: "transcript" (written to the output dir) or its sentence."""
    names = {str(path) for path in files}
    answers: dict[str, str] = {}
    for line in text.splitlines():
        head, arrow, _ = line.partition(" -> ")
        if arrow and head in names:
            answers[head] = "transcript"
            continue
        head, colon, sentence = line.partition(": ")
        if colon and head in names and sentence not in NOTES:
            answers.setdefault(head, sentence)
    return answers


# -- the report ---------------------------------------------------------------------------------------------

def _report(passes: Sequence[Pass], seeds: Sequence[int], total_s: float, args: argparse.Namespace) -> str:
    decode, cli, full = passes
    failures = [failure for one in passes for failure in one.failures]
    crashes = sum(one.outcomes["crash"] for one in passes) + sum(
        1 for f in failures if "exit status" in f.what or "exception" in f.what)
    tracebacks = sum(1 for f in failures if "Traceback" in f.what)
    unanswered = sum(1 for f in failures if "not answered" in f.what)
    rows = [[decode.name, decode.files, f"{decode.wall_s:.0f}", _ms(percentile(decode.per_file_s, 50)),
             _ms(percentile(decode.per_file_s, 99)), _ms(max(decode.per_file_s, default=0)),
             f"{decode.peak_rss_mb:.0f}", len(decode.failures)]]
    rows += [[one.name, one.files, f"{one.wall_s:.0f}", f"{_ms(one.wall_s / max(1, one.files))} (mean)", "-", "-",
              f"{one.peak_rss_mb:.0f}", len(one.failures)] for one in (cli, full)]
    slowest = sorted(decode.slowest, reverse=True)[:5]
    outcomes = [[one.name.split(" ")[0], outcome, count] for one in passes
                for outcome, count in sorted(one.outcomes.items(), key=lambda item: -item[1])]
    first, last = min(seeds), max(seeds)
    failed = sorted({seed for f in failures for seed in f.seeds})
    return "\n\n".join([
        "## Fuzzing: mutated files through `chatscribe transcribe`",
        f"{len(seeds)} files, seeds {first}–{last} (`bench/fuzz_mutants.py`; a seed rebuilds its file: "
        f"`python -m bench.bench_fuzz --seeds N --keep DIR`). Whole run: {total_s:.0f} s. "
        f"**{crashes} crashes, {tracebacks} outputs with a traceback, {unanswered} files unanswered, "
        f"{len(failures)} failures in all** (per-file decode limit {PER_FILE_DECODE_LIMIT_S:g} s, CLI "
        f"{CLI_STARTUP_S:g} s + {CLI_FILE_BUDGET_S:g} s per file, peak RSS ≤ {RSS_LIMIT_MB} MB).",
        "Per-file times: the decode pass times each file; for the CLI passes it is wall time / files (the "
        "CLI works on its files together, so one file's own time is not visible from outside; the "
        "invocation's limit is what bounds it). Peak RSS: the child process's own (`wait4`).",
        table(["pass", "files", "wall s", "per file ms p50", "p99", "max", "peak RSS MB", "failures"], rows),
        "Slowest to decode: " + ", ".join(f"seed {seed} ({what}) {_ms(took)} ms" for took, seed, what in slowest)
        + ".",
        table(["pass", "answer", "files"], outcomes),
        "Failing seeds: " + (" ".join(map(str, failed)) if failed else "none") + ".",
        "Before the fix in `core/media.py`, seeds 130 288 308 500 899 1130 1547 1955 (headers damaged into a "
        "codec id FFmpeg has no decoder for) raised AttributeError out of `decode_audio`, and the CLI "
        "died with a traceback for the whole batch.",
        format_machine(machine_info()),
    ])


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="how many seeds (files)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", help="exactly these seeds (to reproduce a failure)")
    parser.add_argument("--keep", help="write the files (and outputs) here and keep them")
    parser.add_argument("--chunk", type=int, default=500, help="files per `chatscribe transcribe` invocation")
    parser.add_argument("--cli-max-duration", type=float, default=3.0,
                        help="CHATSCRIBE_MAX_DURATION_S for the cli pass")
    parser.add_argument("--full", type=int, default=8, help="decodable files in the full pass")
    parser.add_argument("--quick", action="store_true", help="60 files: checks the script, not robustness")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/ alone")
    parser.add_argument("--decode-worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--audio-dir", default=str(AUDIO_DIR), help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
