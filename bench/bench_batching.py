"""Cross-request batching: a burst of 32 short notes through chatscribe vs a plain faster-whisper loop.

The notes (2–12 s) are cut from the shared speech at pauses (jfk.flac, the English half of
multilingual.mp3, hotwords.mp3) and synthesised with espeak-ng, so every reference is known. Both
sides run in this process on the same CPU, one after the other, on the same files:

- plain: `WhisperModel("base", int8).transcribe(path)` over the files, faster-whisper's defaults;
- chatscribe: `TranscriptionService.transcribe()` for all files at once (the CLI and HTTP path), on its
  defaults (each note's language detected, then notes of one language packed into shared windows) and
  with `CHATSCRIBE_LANGUAGES=en` (declared language: nothing to detect);
- alone (unless --quick): chatscribe with batching off, one note at a time, for the one-by-one WER.

All notes come from one conversation (one API key, as one CLI run): only one conversation's notes share
a packed window (core/jobs/runner.py batch_key); the burst from eight chats is bench/bench_burst.py.

Reported: throughput (audio seconds per wall second), word error rate, words that ended up in a note
whose reference does not have them but another note's does (words moved between notes), and
contamination: words of a note's transcript that its window-mates' references have but neither its own
reference nor its own one-by-one transcript (another note's words shaping this one's decoding).

    python -m bench.bench_batching [--quick] [--rounds N] [--notes N] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
import wave
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from bench.profile_steps import StepProfile
from bench.report import AUDIO_DIR, format_machine, machine_info, mark, table, write_section
from chatscribe.core.config import Settings
from chatscribe.core.engines.batching import Batcher
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, MediaRequest, decode_audio
from chatscribe.core.quality import normalize
from chatscribe.core.service import TranscriptionService

TARGET_SPEEDUP = 4.0
TARGET_SPEEDUP_DECLARED = 4.5
TARGET_LONE = 1.8
WER_MARGIN = 0.0
"""Targets of issue 17: the burst ≥ 4× plain (≥ 4.5× with the language declared), a lone note ≥ 1.8×,
the word error rate no higher than plain's."""
LICENSE = "multilingual.mp3"
CUTS: tuple[tuple[str, float, float | None, str], ...] = (
    ("jfk.flac", 0.0, None, "And so my fellow Americans, ask not what your country can do for you, ask what you "
                            "can do for your country."),
    ("jfk.flac", 0.0, 3.0, "And so my fellow Americans,"),
    ("jfk.flac", 3.0, None, "ask not what your country can do for you, ask what you can do for your country."),
    ("hotwords.mp3", 0.0, None, "Then you go into your ComfyUI folder again, in the ComfyUI..."),
    (LICENSE, 0.0, 11.3, "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
                         "software and associated documentation files, to deal in the software without "
                         "restriction, including without limitation the rights to use,"),
    (LICENSE, 11.3, 21.1, "copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the "
                          "software, and to permit persons to whom the software is furnished to do so,"),
    (LICENSE, 21.1, 25.7, "subject to the following conditions. The above copyright notice and this permission "
                          "notice"),
    (LICENSE, 25.7, 29.4, "shall be included in all copies or substantial portions of the software."),
)
"""Cuts of the shared recordings at pauses, with what is said in each (from references.json)."""
SPOKEN = (
    "Please call me back when you get this.",
    "The train to the airport leaves at noon.",
    "I left the blue umbrella in the kitchen.",
    "Can you pick up some bread and milk on your way home?",
    "The meeting has been moved to Thursday afternoon because the manager is travelling.",
    "Remember to water the tomato plants in the garden before the weekend.",
    "We finally finished painting the living room, and it looks much brighter now.",
    "The library closes early on holidays, so return the books this morning.",
    "My sister adopted a small grey kitten from the animal shelter last month.",
    "Turn left at the bakery, then walk straight until you see the red door.",
    "The concert was cancelled because of the storm, but the tickets will be refunded.",
    "Don't forget your passport, your charger, and the hotel confirmation.",
    "Thanks for the lovely dinner yesterday, the soup was delicious.",
    "Our neighbours are building a wooden fence along the northern side of their garden, and the noise "
    "starts very early every morning.",
    "The doctor said I should rest for a few days and drink plenty of water.",
    "Could you send me the slides from the presentation when you have a moment?",
    "The bicycle needs new brakes and a better saddle before the long ride.",
    "Happy birthday, I hope you have a wonderful day with your family.",
    "The river flooded the lower field, so the farmers moved the sheep to higher ground overnight.",
    "I'm running late, start without me.",
    "The museum opens a new exhibition about ancient navigation, with maps, compasses and model ships from "
    "many different centuries.",
    "Let's meet at the cafe near the station.",
    "The printer on the second floor is jammed again, please use the one near the elevator until the "
    "technician arrives.",
)
"""Synthesised with espeak-ng in several English voices and speeds."""
VOICES = (("en-us", 165), ("en-gb", 150), ("en-us", 180), ("en-gb-x-rp", 160))


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    path: Path
    reference: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    texts: list[str]
    wall_s: float
    mates: dict[int, set[int]] = field(default_factory=dict)
    """Note index -> the notes it shared a decoding window with (packed side only)."""
    profile: list[list[str]] = field(default_factory=list)
    """Where the time went (bench/profile_steps.py), for the first round of each chatscribe side."""


class WindowMates:
    """Which notes shared a packed window: the batches the runner composes (`on_batch`) and the windows
    its batcher decodes, mapped back to the clips by their bytes. The runner has one slot, so the
    windows being decoded are always those of the last batch composed."""

    def __init__(self, runner: LocalRunner, clips: list[Clip]) -> None:
        self.index_of = {c.path.read_bytes(): i for i, c in enumerate(clips)}
        self.batch: tuple[Work, ...] = ()
        self.mates: dict[int, set[int]] = defaultdict(set)
        runner.on_batch = self._composed
        batcher = runner.batcher
        decode = batcher._decode  # type: ignore[union-attr]

        def recording(windows: Any, options: Any, language: Any, **kwargs: Any) -> Any:
            # Mates: every note decoded in the same call, whether it shares the note's window (packed)
            # or only the call (reduced or batched windows, each in its own sequence).
            members = {self.index_of[self.batch[note.index].data] for window in windows for note, _ in window.notes}
            if len(members) > 1:
                for member in members:
                    self.mates[member] |= members - {member}
            return decode(windows, options, language, **kwargs)

        batcher._decode = recording  # type: ignore[union-attr]

    def _composed(self, works: tuple[Work, ...]) -> None:
        self.batch = works


def make_clips(folder: Path) -> list[Clip]:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for index, (source, start, end, reference) in enumerate(CUTS):
        samples = decode_audio((AUDIO_DIR / source).read_bytes(), max_duration_s=3600).samples
        piece = samples[int(start * SAMPLE_RATE) : None if end is None else int(end * SAMPLE_RATE)]
        clips.append(_write(folder / f"cut{index:02d}.wav", piece, reference))
    clips.append(_write(folder / "jfk_voice.wav", decode_audio((AUDIO_DIR / "jfk_voice.ogg").read_bytes(),
                                                               max_duration_s=3600).samples, CUTS[0][3]))
    for index, sentence in enumerate(SPOKEN):
        voice, speed = VOICES[index % len(VOICES)]
        raw = folder / f"tts{index:02d}.raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), sentence], check=True)
        samples = decode_audio(raw.read_bytes(), max_duration_s=3600).samples
        raw.unlink()
        clips.append(_write(folder / f"tts{index:02d}.wav", samples, sentence))
    return clips


def _write(path: Path, samples: np.ndarray, reference: str) -> Clip:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return Clip(path.name, path, reference, len(samples) / SAMPLE_RATE)


def run_plain(clips: list[Clip], model_path: Path) -> Run:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_path), device="cpu", compute_type="int8")
    _ = list(model.transcribe(str(clips[1].path))[0])  # warm-up, not timed
    started = time.perf_counter()
    texts = [" ".join(s.text.strip() for s in model.transcribe(str(c.path))[0]) for c in clips]
    return Run("plain faster-whisper loop (defaults: beam 5, language detected)", texts,
               time.perf_counter() - started)


async def run_service(label: str, clips: list[Clip], engine: FasterWhisperEngine, data_dir: Path, *,
                      languages: str, batching: bool, profiled: bool = False) -> Run:
    settings = Settings(_env_file=None, data_dir=data_dir, model="base", device="cpu",  # type: ignore[call-arg]
                        languages=languages, user_rate="", queue_max=1000)
    async with TranscriptionService(settings=settings, engine=engine) as svc:
        runner = LocalRunner(engine, slots=1, max_duration_s=3600, metrics=svc.metrics,
                             batch_window_s=settings.batch_window_ms / 1000, batching="auto" if batching else "off",
                             pack_across_conversations=settings.pack_across_conversations)
        if runner.batcher is not None:
            await asyncio.to_thread(runner.batcher.profile)  # measured once per process, before the first batch
        windows = WindowMates(runner, clips) if isinstance(runner.batcher, Batcher) else None
        svc.set_runner(runner)
        options = _options(settings)
        steps = StepProfile() if profiled else None
        try:
            started = time.perf_counter()
            results = await asyncio.gather(*(svc.transcribe(_request(i, c), options) for i, c in enumerate(clips)))
            wall = time.perf_counter() - started
        finally:
            if steps is not None:
                steps.close()
    return Run(label, [r.text for r in results], wall, dict(windows.mates) if windows else {},
               steps.rows(wall) if steps is not None else [])


def _options(settings: Settings) -> Any:
    from chatscribe.core.options import TranscribeOptions

    return TranscribeOptions(expected_languages=settings.expected_languages)


def _request(index: int, clip: Clip) -> MediaRequest:
    data = clip.path.read_bytes()

    async def fetch(limit: int) -> bytes:
        return data

    return MediaRequest(platform="http", chat_id="one-api-key", user_id="one-api-key", fetch=fetch,
                        kind="voice", size_bytes=len(data), file_name=clip.name)


def corpus_wer(clips: list[Clip], texts: list[str]) -> float:
    return float(jiwer.wer([normalize(c.reference) for c in clips], [normalize(t) or "<empty>" for t in texts]))


def moved_words(clips: list[Clip], texts: list[str], alone: list[str]) -> list[tuple[str, str]]:
    """(note, word): a word heard in a note whose reference lacks it, while another note's reference has it
    and that note's transcript lacks it: the word left its note for another. Words its one-by-one
    transcript also has (the model's own mishearing) and words of three references or more ("the",
    "you") say nothing about where they came from."""
    refs = [normalize(c.reference).split() for c in clips]
    heard = [set(normalize(t).split()) for t in texts]
    spread = Counter(word for words in refs for word in set(words))
    moved = []
    for index, (clip, text) in enumerate(zip(clips, texts, strict=True)):
        own = set(refs[index]) | set(normalize(alone[index]).split())
        for word in normalize(text).split():
            left = any(word in refs[j] and word not in heard[j] for j in range(len(clips)) if j != index)
            if word not in own and spread[word] < 3 and left:
                moved.append((clip.name, word))
    return moved


def contamination(clips: list[Clip], run: Run, alone: list[str]) -> list[tuple[str, str]]:
    """(note, word): a word of the note's transcript that a window-mate's reference has but neither the
    note's own reference nor its one-by-one transcript (`alone`): the mate's words shaped its decoding."""
    refs = [set(normalize(c.reference).split()) for c in clips]
    found = []
    for index, text in enumerate(run.texts):
        mates = set().union(*(refs[j] for j in run.mates.get(index, ())))
        own = refs[index] | set(normalize(alone[index]).split())
        found += [(clips[index].name, word) for word in normalize(text).split() if word in mates and word not in own]
    return found


def _median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.wall_s)
    return ordered[len(ordered) // 2]


async def _main(args: argparse.Namespace) -> str:
    info = machine_info()
    work = Path(tempfile.mkdtemp(prefix="bench-batching-"))
    try:
        clips = make_clips(work / "notes")[: args.notes]
        model_dir = work / "models"
        model = resolve_model("base", model_dir)
        engine = FasterWhisperEngine(model, device="cpu")
        engine.transcribe(decode_audio(clips[1].path.read_bytes(), max_duration_s=60).samples,
                          _options(Settings(_env_file=None)))  # type: ignore[call-arg]  # warm-up
        runs: dict[str, list[Run]] = {"plain": [], "auto": [], "en": [], "alone": []}
        for round_ in range(args.rounds):
            runs["plain"].append(await asyncio.to_thread(run_plain, clips, model.path))
            first = round_ == 0
            runs["auto"].append(await run_service(
                "chatscribe, defaults (language detected per note)", clips, engine,
                work / f"auto{round_}", languages="", batching=True, profiled=first))
            runs["en"].append(await run_service("chatscribe, CHATSCRIBE_LANGUAGES=en", clips, engine,
                                                work / f"en{round_}", languages="en", batching=True, profiled=first))
            if not args.quick:
                runs["alone"].append(await run_service(
                    "chatscribe, batching off: each note alone, one after the other (beam 5, language detected)",
                    clips, engine, work / f"alone{round_}", languages="", batching=False, profiled=first))
        reason = Batcher(engine).profile().reason  # measured once per engine, by the first batching side
        alone = (_median_run(runs["alone"]) if runs["alone"] else _median_run(runs["plain"])).texts
        packed = [run for key in ("auto", "en") for run in runs[key]]
        contaminated = [(contamination(clips, run, alone), len(run.mates)) for run in packed]
        # Only round 0 is profiled: its profile is shown with its own wall time, whichever round is the median.
        profiled = {key: sides[0] for key, sides in runs.items() if key != "plain" and sides}
        return _render(args, info, clips, {k: _median_run(v) for k, v in runs.items() if v}, reason, contaminated,
                       profiled)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _render(args: argparse.Namespace, info: dict[str, str], clips: list[Clip], runs: dict[str, Run],
            reason: str, contaminated: list[tuple[list[tuple[str, str]], int]],
            profiled: dict[str, Run]) -> str:
    """`runs`: each side's median round; `profiled`: each chatscribe side's first round, the one profiled."""
    audio_s = sum(c.duration_s for c in clips)
    plain = runs["plain"]
    rows = []
    for key, run in runs.items():
        throughput = audio_s / run.wall_s
        rows.append([run.label, f"{run.wall_s:.1f} s", f"{throughput:.1f}",
                     f"{plain.wall_s / run.wall_s:.2f}×", f"{corpus_wer(clips, run.texts) * 100:.1f} %",
                     "—" if key == "plain" else str(len(moved_words(clips, run.texts, plain.texts)))])
    checks = []
    sides = [("auto", "defaults", TARGET_SPEEDUP), ("en", "CHATSCRIBE_LANGUAGES=en", TARGET_SPEEDUP_DECLARED)]
    if "alone" in runs:
        sides.append(("alone", "a lone note, batching off", TARGET_LONE))
    for key, name, target in sides:
        speedup = plain.wall_s / runs[key].wall_s
        wer_gap = corpus_wer(clips, runs[key].texts) - corpus_wer(clips, plain.texts)
        checks += [
            [f"throughput ≥ {target}× plain ({name})", f"{speedup:.2f}×", mark(speedup >= target)],
            [f"WER no higher than plain's ({name})", f"{wer_gap * 100:+.1f} points", mark(wer_gap <= WER_MARGIN)],
        ]
    moved = moved_words(clips, runs["en"].texts, plain.texts) + moved_words(clips, runs["auto"].texts, plain.texts)
    checks.append(["words moved to another note", str(len(moved)) + "".join(f" ({n}: {w})" for n, w in moved),
                   mark(not moved)])
    found = sorted({pair for run, _ in contaminated for pair in run})
    shared = min((count for _, count in contaminated), default=0)
    checks.append([f"contamination: words of notes decoded in the same call in a note (batching sides, "
                   f"{len(contaminated)} runs, at least {shared} of {len(clips)} notes sharing a call in each)",
                   f"{max((len(run) for run, _ in contaminated), default=0)} at most in a run"
                   + "".join(f" ({n}: {w})" for n, w in found), mark(not found)])
    profiles = []
    for key in ("auto", "en", "alone"):
        if key in profiled and profiled[key].profile:
            profiles += [f"**{profiled[key].label}** (first round, {profiled[key].wall_s:.1f} s):",
                         table(["step", "calls", "time", "share"], profiled[key].profile)]
    lengths = sorted(c.duration_s for c in clips)
    cut = sum(not c.name.startswith("tts") for c in clips)
    return "\n\n".join([
        "## Batching: a burst of short notes, chatscribe vs a plain faster-whisper loop",
        f"{len(clips)} notes of {lengths[0]:.1f}–{lengths[-1]:.1f} s ({audio_s:.0f} s of audio): "
        f"{cut} cut at pauses from jfk.flac, jfk_voice.ogg, hotwords.mp3 and the English half of "
        f"multilingual.mp3, {len(clips) - cut} synthesised with espeak-ng. CPU, `base` int8, both sides in one "
        f"process, one after the other, {args.rounds} round(s) (median shown). All notes are sent at once, "
        "from one conversation (one API key), through `TranscriptionService.transcribe()`; the plain side "
        "loops over the same WAV files with "
        "`WhisperModel.transcribe()` defaults. Strategy chosen by measuring the device: "
        f"{reason}. Reduced windows (trimmed) decode with the engine's beam 5, packed windows greedily "
        "(beam 1); a note alone takes the reduced-window shortcut with beam 5, every shortcut guarded by "
        "Whisper's checks and the quality pass (a note failing them goes to the plain path).",
        table(["side", "wall", "audio s / wall s", "vs plain", "WER", "words moved"], rows),
        table(["check", "value", "result"], checks),
        "### Where the time goes\n\nSelf time of each step (bench/profile_steps.py: a step's time leaves out "
        "the steps it calls; the encoder and decoder rows are the batched calls, the plain-path row is "
        "faster-whisper's transcribe() for notes a guard sent back or that went alone).",
        *profiles,
        "Before the reduced windows (2026-12-01, the same machine under load, at commit 9cb0100 with "
        "bench/profile_steps.py): the defaults packed notes into 30 s windows after a separate "
        "encoder pass per note for its language, 2.5× plain; of that run's time the encoder took 48 %, the "
        "decoder 18 %, word alignment to split packed notes 6 %, notes sent alone to the plain path 29 %, "
        "language detection, VAD, media decoding and the quality pass 1–2 % each. The encoder's fixed cost "
        "per 30 s window was what to cut.",
        "### Machine\n\n" + format_machine(info),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the one-by-one chatscribe side")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every side; the median is reported")
    parser.add_argument("--notes", type=int, default=None, help="only the first N notes (a reduced run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesise the notes: apt-get install -y espeak-ng")
    markdown = asyncio.run(_main(args))
    print(markdown)
    if not args.no_write:
        write_section("batching", markdown)


if __name__ == "__main__":
    main()
