"""A burst of voice notes through the service's journaled path against a plain first-in-first-out queue.

    python -m bench.bench_burst [--model tiny.en] [--scenario forwarding mixed] [--rounds N] [--unbatched]
                                [--no-plain] [--quick] [--no-write]

Both sides get the same 40 notes (bench/burst_notes.py) at the same moments, with the same engine
(one model instance, CPU, the service's default settings) and one transcription at a time. The service
side is `submit()` with a Delivery that records when each answer arrives, as a bot would; the FIFO side
is one worker taking notes in arrival order and doing the same work (decode, engine, quality pass).
Time to answer = answer time - the moment the note was sent. `--rounds N` runs the chatscribe side N
times per burst (a fresh data dir each) and shows its median round by short-note p95, listing every
round's p95; `--unbatched` adds the service with batching off. Unless `--no-plain`, a plain faster-whisper
loop over the same notes is the baseline of the 8-chat throughput table. Writes the `burst` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.burst_notes import SHORT_S, Note, Scenario, scenarios
from bench.burst_sim import POLICIES, simulate
from bench.report import (
    AUDIO_DIR,
    MODELS_DIR,
    format_machine,
    machine_info,
    mark,
    median,
    percentile,
    require_audio,
    table,
    write_section,
)
from chatscribe.bots.engine_loader import load_engine
from chatscribe.core.config import Settings
from chatscribe.core.engines.base import Engine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.errors import ChatscribeError
from chatscribe.core.jobs.journal import Job, ProgressUpdate, Receipt
from chatscribe.core.jobs.runner import LocalRunner, default_slots
from chatscribe.core.media import Fetch, MediaRequest, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import screen
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript

TARGET_RATIO = 3.0
UNBATCHED = "chatscribe, batching off"


class _Recorder:
    """The Delivery of a chat platform that only notes when each answer would have been sent."""

    def __init__(self, notes: Mapping[str, Note]) -> None:
        self.notes = notes
        self.answered: dict[str, float] = {}
        self.started: dict[str, float] = {}
        """When each note's transcription began (its first "transcribing" progress update)."""
        self.failed: dict[str, str] = {}
        self.done = asyncio.Event()

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        data = self.notes[reference["note"]].data

        async def fetch(limit: int) -> bytes:
            return data

        return fetch

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        if update.stage == "transcribing":
            self.started.setdefault(job.request.reference["note"], time.monotonic())

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        await receipt.part_sent()
        note = job.request.reference["note"]
        self.answered[note] = time.monotonic()
        if isinstance(outcome, ChatscribeError):
            self.failed[note] = outcome.user_message
        if len(self.answered) == len(self.notes):
            self.done.set()


async def _arrive(notes: tuple[Note, ...], send: Any) -> tuple[float, dict[str, float]]:
    """Send each note at its moment (a benchmark replays a timeline: sleeping is the point here)."""
    start = time.monotonic()
    sent: dict[str, float] = {}
    for note in notes:
        await asyncio.sleep(max(0.0, start + note.arrival_s - time.monotonic()))
        sent[str(note.index)] = time.monotonic()
        await send(note)
    return start, sent


async def run_service(scenario: Scenario, settings: Settings, engine: Engine, *, batching: bool = True
                      ) -> dict[str, Any]:
    recorder = _Recorder({str(note.index): note for note in scenario.notes})
    async with TranscriptionService(settings=settings, engine=engine) as service:
        if not batching:  # the same service and scheduler, each note through the engine on its own
            service.set_runner(LocalRunner(engine, slots=settings.workers or default_slots(engine),
                                           max_duration_s=settings.max_duration_s, metrics=service.metrics,
                                           batch_window_s=settings.batch_window_ms / 1000, batching="off"))
        service.register("bench", recorder)

        async def send(note: Note) -> None:
            reference = {"note": str(note.index)}
            request = MediaRequest(platform="bench", chat_id=note.chat_id, user_id=note.chat_id,
                                   fetch=recorder.fetcher(reference), kind="voice", mime_type="audio/ogg",
                                   size_bytes=len(note.data), duration_hint_s=round(note.duration_s),
                                   reference=reference)
            await service.submit(request, TranscribeOptions())

        start, sent = await _arrive(scenario.notes, send)
        await recorder.done.wait()
    turn_to_answer = {note.index: recorder.answered[str(note.index)] - recorder.started[str(note.index)]
                      for note in scenario.notes if str(note.index) in recorder.started}
    return {**_outcome(scenario, start, sent, recorder.answered, recorder.failed), "work_s": turn_to_answer}


async def run_fifo(scenario: Scenario, settings: Settings, engine: Engine) -> dict[str, Any]:
    queue: asyncio.Queue[Note] = asyncio.Queue()
    answered: dict[str, float] = {}
    failed: dict[str, str] = {}
    work_s: dict[int, float] = {}

    def work(note: Note) -> Transcript:  # what the service's runner does with a note, nothing more
        decoded = decode_audio(note.data, max_duration_s=settings.max_duration_s)
        return screen(engine.transcribe(decoded.samples, TranscribeOptions()), decoded.samples)

    async def worker() -> None:
        while True:
            note = await queue.get()
            began = time.monotonic()
            try:
                await asyncio.to_thread(work, note)
            except ChatscribeError as exc:
                failed[str(note.index)] = exc.user_message
            answered[str(note.index)] = time.monotonic()
            work_s[note.index] = answered[str(note.index)] - began
            queue.task_done()

    async def send(note: Note) -> None:
        queue.put_nowait(note)

    task = asyncio.create_task(worker())
    start, sent = await _arrive(scenario.notes, send)
    await queue.join()
    task.cancel()
    return {**_outcome(scenario, start, sent, answered, failed), "work_s": work_s}


def run_plain(scenario: Scenario, model_path: Path) -> float:
    """Plain faster-whisper with its defaults over the same notes, one after the other: its wall seconds,
    the baseline of the throughput row (as bench_batching's plain loop is for one chat)."""
    import io

    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_path), device="cpu", compute_type="int8")
    list(model.transcribe(io.BytesIO(scenario.notes[0].data))[0])  # warm-up, not timed
    started = time.perf_counter()
    for note in scenario.notes:
        list(model.transcribe(io.BytesIO(note.data))[0])
    return time.perf_counter() - started


def _outcome(scenario: Scenario, start: float, sent: dict[str, float], answered: dict[str, float],
             failed: dict[str, str]) -> dict[str, Any]:
    waits = {note.index: answered[str(note.index)] - sent[str(note.index)] for note in scenario.notes}
    return {"waits": waits, "makespan_s": max(answered.values()) - start, "failed": failed,
            "order": sorted(waits, key=lambda index: answered[str(index)])}


async def _main(args: argparse.Namespace) -> str:
    require_audio()
    info = machine_info()
    started = time.monotonic()
    chosen = [s for s in scenarios(AUDIO_DIR) if s.name in args.scenario]
    if args.quick:  # a smaller burst: checks the script, not the scheduler
        chosen = [Scenario(s.name, s.description + " (quick: first 12 notes)", s.notes[:12]) for s in chosen]
    root = Path(tempfile.mkdtemp(prefix="chatscribe-burst-"))
    try:
        return await _measure(args, info, chosen, root, started)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _measure(args: argparse.Namespace, info: dict[str, str], chosen: list[Scenario], root: Path,
                   started: float) -> str:
    base = Settings(_env_file=None, data_dir=MODELS_DIR, model=args.model, device="cpu")  # type: ignore[call-arg]
    engine = await asyncio.to_thread(load_engine, base)
    warm = chosen[0].notes[0]
    await asyncio.to_thread(engine.transcribe, decode_audio(warm.data, max_duration_s=60).samples, TranscribeOptions())
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for number, scenario in enumerate(chosen):
        sides: list[tuple[str, Any]] = [("FIFO", run_fifo), ("chatscribe", run_service)]
        if args.unbatched:
            sides.append((UNBATCHED, functools.partial(run_service, batching=False)))
        if number % 2:  # alternate which side goes first, so a busy neighbour does not always hit the same one
            sides.reverse()
        for name, run in sides:
            rounds = []
            for round_ in range(args.rounds if name == "chatscribe" else 1):  # a fresh data dir each round
                settings = base.model_copy(update={"data_dir": root / f"{scenario.name}-{name}-{round_}"})
                cpu = _cpu_s()
                result = await run(scenario, settings, engine)
                rounds.append({**result, "cpu_s": _cpu_s() - cpu})
                print(f"{scenario.name} {name}: done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
            rounds.sort(key=lambda r: _p95(r, scenario, short=True))
            results.setdefault(scenario.name, {})[name] = {**rounds[len(rounds) // 2],
                                                           "rounds": [_p95(r, scenario, short=True) for r in rounds]}
        if args.plain:
            path = resolve_model(args.model, MODELS_DIR).path
            results[scenario.name]["plain"] = {"wall_s": await asyncio.to_thread(run_plain, scenario, path)}
            print(f"{scenario.name} plain: done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return _render(args, info, chosen, results, time.monotonic() - started)


def _render(args: argparse.Namespace, info: dict[str, str], chosen: list[Scenario],
            results: dict[str, dict[str, dict[str, Any]]], elapsed: float) -> str:
    parts = [
        f"## Burst: fair scheduler vs first-in-first-out (`{args.model}`, CPU)",
        f"Measured in one run of {elapsed / 60:.1f} min. 40 OGG/Opus voice notes of 2–60 s from 8 chats, each a "
        "different slice of the real English speech in `../shared/audio` (bench/burst_notes.py, fixed seed), "
        "sent on a fixed timeline. chatscribe: `TranscriptionService.submit()` with the default settings "
        "(one slot on CPU, fair scheduler, short notes waiting together may share an engine call, a short "
        "note in a reduced encoder window where the device gains from it, VAD on, beam 5), answers recorded "
        "by the Delivery. FIFO: one worker, same engine instance, same work per "
        "note (decode, engine, quality pass), one note at a time in arrival order. "
        f"Time to answer = answer - sent; short = under {SHORT_S:.0f} s.",
        format_machine(info),
    ]
    parts.append("### The bursts")
    for scenario in chosen:
        work = results[scenario.name]["FIFO"]["work_s"]
        short = [n for n in scenario.notes if n.short]
        short_work = sum(work[n.index] for n in short)
        parts.append(
            f"- **{scenario.name}**: {scenario.description}. {len(scenario.notes)} notes, {len(short)} of them "
            f"short; {sum(n.duration_s for n in scenario.notes):.0f} s of audio, {sum(work.values()):.0f} s of "
            f"work one after the other (FIFO run). A short note took {short_work / max(1, len(short)):.2f} s of "
            f"work on average, a 30–60 s one {_mean_work(scenario, work, 30):.2f} s: the short notes are "
            f"{short_work / sum(work.values()):.0%} of the work.")
    targets, rows = [], []
    for scenario in chosen:
        fifo, ours = results[scenario.name]["FIFO"], results[scenario.name]["chatscribe"]
        ratio = _p95(fifo, scenario, short=True) / _p95(ours, scenario, short=True)
        targets.append([f"{scenario.name}: FIFO p95 / chatscribe p95, notes under {SHORT_S:.0f} s",
                        f"≥ {TARGET_RATIO:.0f}×", f"{ratio:.1f}×", mark(ratio >= TARGET_RATIO)])
        for name in ("FIFO", "chatscribe", UNBATCHED):
            if name not in results[scenario.name]:
                continue
            result = results[scenario.name][name]
            rows.append([scenario.name, name, *_stats(result, scenario, short=True), *_stats(result, scenario),
                         *_stats(result, scenario, short=False), f"{result['makespan_s']:.1f} s",
                         f"{median(list(result['work_s'].values())):.2f} s", f"{result['cpu_s']:.0f} s",
                         len(result["failed"])])
    throughput = []
    for scenario in chosen:
        plain = results[scenario.name].get("plain")
        if plain is None:
            continue
        audio = sum(n.duration_s for n in scenario.notes)
        for name in ("chatscribe", UNBATCHED, "FIFO"):
            if name in results[scenario.name]:
                span = results[scenario.name][name]["makespan_s"]
                throughput.append([scenario.name, name, f"{span:.1f} s", f"{audio / span:.1f}",
                                   f"{plain['wall_s'] / span:.2f}×"])
        throughput.append([scenario.name, "plain faster-whisper loop (defaults, one after the other)",
                           f"{plain['wall_s']:.1f} s", f"{audio / plain['wall_s']:.1f}", "1.00×"])
    if throughput:
        targets_note = ("### 8 chats: throughput against plain faster-whisper\n\nFrom the first note sent to the "
                        "last answer (the notes arrive over about 10 s, so this counts the arrival too) against "
                        "plain faster-whisper's defaults looping over the same 40 notes in this run; one chat's "
                        "burst of short notes is the batching section's table (bench_batching).")
        parts += [targets_note, table(["Burst", "side", "first sent → last answer", "audio s / wall s",
                                       "vs plain"], throughput)]
    if args.rounds > 1:
        targets_rounds = "; ".join(
            f"{s.name}: " + ", ".join(f"{p95:.1f}" for p95 in results[s.name]["chatscribe"]["rounds"]) + " s"
            for s in chosen)
        targets.append(["chatscribe short-note p95 in each round, lowest first (the rows show the median round)",
                        "", targets_rounds, ""])
    parts += ["### Target", table(["Target", "Goal", "Measured", ""], targets),
              "### Time to answer (seconds)",
              table(["Burst", "Queue", "short p50", "short p95", "all p50", "all p95", "≥ 10 s p50", "≥ 10 s p95",
                     "last answer", "turn → answer", "CPU time", "errors"], rows),
              "turn → answer: median seconds from the start of a note's transcription to its answer (for "
              "chatscribe, from its first progress update to `deliver`): the work itself plus what the "
              "service adds per note after its turn began.",
              "### What another scheduler would give (simulated)",
              "The FIFO run's measured work time of each note, replayed one note at a time (no batching) "
              "through other orders (bench/burst_sim.py; the FIFO row is the simulation's check against the "
              "measured FIFO). Time to answer in seconds, and FIFO's short-note p95 divided by the policy's."]
    parts.append("Reading it: where a simulated order reaches the target and chatscribe does not, the order of "
                 "core/jobs/scheduler.py is what holds short notes back. Plain Whisper pads every note to a 30 s "
                 "window, so a 3 s note costs a large share of what a 60 s one does (see the bursts above); the "
                 "larger the short notes' share of the work, the less any order can do for them, and only making "
                 "them cheaper (batching) helps further. `--unbatched` adds the service with batching off, to "
                 "tell its order from its batching.")
    for scenario in chosen:
        parts.append(table([f"{scenario.name}: policy", "short p50", "short p95", "FIFO p95 / p95", "all p95",
                            "≥ 10 s p95"], _what_if(scenario, results[scenario.name]["FIFO"]["work_s"])))
    return "\n\n".join(parts)


def _mean_work(scenario: Scenario, work_s: dict[int, float], at_least_s: float) -> float:
    chosen = [work_s[n.index] for n in scenario.notes if n.duration_s >= at_least_s]
    return sum(chosen) / len(chosen) if chosen else float("nan")


def _what_if(scenario: Scenario, work_s: dict[int, float]) -> list[list[object]]:
    rows: list[list[object]] = []
    fifo_p95 = 0.0
    for name, policy in POLICIES.items():
        result = {"waits": simulate(scenario.notes, work_s, policy)}
        p95 = _p95(result, scenario, short=True)
        fifo_p95 = fifo_p95 or p95
        rows.append([name, *_stats(result, scenario, short=True)[:1], f"{p95:.1f}", f"{fifo_p95 / p95:.1f}×",
                     _stats(result, scenario)[1], _stats(result, scenario, short=False)[1]])
    return rows


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pick(result: dict[str, Any], scenario: Scenario, short: bool | None) -> list[float]:
    return [result["waits"][n.index] for n in scenario.notes if short is None or n.short == short]


def _p95(result: dict[str, Any], scenario: Scenario, short: bool | None = None) -> float:
    return percentile(_pick(result, scenario, short), 95)


def _stats(result: dict[str, Any], scenario: Scenario, short: bool | None = None) -> list[str]:
    waits = _pick(result, scenario, short)
    return [f"{median(waits):.1f}", f"{percentile(waits, 95):.1f}"] if waits else ["–", "–"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_burst", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny.en",
                        help="tiny.en (default: the whole bench in ~2 min on 2 cores) or base (realistic, ~3× slower)")
    parser.add_argument("--unbatched", action="store_true",
                        help="also run the service with batching off: the scheduler's order alone (one more pass)")
    parser.add_argument("--scenario", nargs="+", default=["forwarding", "mixed"], choices=["forwarding", "mixed"])
    parser.add_argument("--quick", action="store_true", help="the first 12 notes only: checks the script")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the chatscribe side this often per burst and show its median round (by short p95)")
    parser.add_argument("--no-plain", dest="plain", action="store_false",
                        help="skip the plain faster-whisper loop (the throughput baseline)")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/ untouched")
    args = parser.parse_args(argv)
    markdown = asyncio.run(_main(args))
    print(markdown)
    if not args.no_write:
        write_section("burst", markdown)
        print("wrote the burst section of docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()
