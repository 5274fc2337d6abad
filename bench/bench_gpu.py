"""GPU: a burst of short notes and one long file through the transformers engine, batched vs one by one.

For hosts whose GPU CTranslate2 cannot use (CUDA 13 only): chatscribe's transformers engine, fp16 with SDPA
attention, weights converted offline from the bundled CTranslate2 model. Same engine, same run: every note
in batches (`transcribe_batch`) against one note per call; a long file (the shared speech repeated to
10 minutes) cut at pauses and batched; word error rate on the shared recordings against faster-whisper's
(on the CPU, where it runs everywhere). Writes the `gpu` section of docs/benchmarks.md.

    .venv/bin/python -m bench.bench_gpu            # needs CUDA, torch and transformers
    .venv/bin/python -m bench.bench_gpu --quick    # a small CPU run that checks the script
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np

from bench.report import AUDIO_DIR, MODELS_DIR, format_machine, machine_info, mark, require_audio, table, write_section
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.engines.transformers_engine import TransformersWhisperEngine
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.options import TranscribeOptions
from tests.wer import wer

SOURCES = ("jfk.flac", "hotwords.mp3", "multilingual.mp3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--notes", type=int, default=256)
    parser.add_argument("--one-by-one", type=int, default=64, help="notes timed one per call (rate extrapolated)")
    parser.add_argument("--long-minutes", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny.en on the CPU, a few notes: checks the script")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    require_audio()
    import torch

    device = "cpu" if args.quick else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch: run with --quick to check the script on the CPU")
    model = "tiny.en" if args.quick else args.model
    notes_n, one_n, minutes = (8, 4, 1.0) if args.quick else (args.notes, args.one_by_one, args.long_minutes)
    engine = TransformersWhisperEngine(resolve_model(model, MODELS_DIR), MODELS_DIR, device=device, batch_size=128)
    speech = [decode_audio((AUDIO_DIR / name).read_bytes(), max_duration_s=3600).samples for name in SOURCES]
    notes = _notes(speech, notes_n)
    options = TranscribeOptions(language="en") if engine.multilingual else TranscribeOptions()
    engine.transcribe_batch(notes[:2], options)  # warm-up: kernels, caches

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    engine.transcribe_batch(notes, options)
    sync()
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    for note in notes[:one_n]:
        engine.transcribe(note, options)
    sync()
    single_s = (time.perf_counter() - started) / one_n * len(notes)
    long_audio = _repeat(speech, minutes * 60)
    started = time.perf_counter()
    engine.transcribe(long_audio, options)
    sync()
    long_s = time.perf_counter() - started
    memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "– (CPU)"
    rows, worst = _accuracy(engine, model)

    notes_per_s = len(notes) / batched_s
    realtime = len(long_audio) / SAMPLE_RATE / long_s
    audio_s = sum(len(n) for n in notes) / SAMPLE_RATE
    text = "\n".join([
        f"## GPU: transformers engine, batched vs one by one (`{model}`, {device})\n",
        f"{len(notes)} notes of 2–12 s ({audio_s:.0f} s of audio) cut from {', '.join(SOURCES)}; one long file of "
        f"{minutes:g} min (the same speech repeated). fp16 + SDPA on CUDA. One-by-one time is measured on "
        f"{one_n} notes and scaled to all.\n",
        table(["Target", "Goal", "Measured", ""], [
            ["notes per second, batched", "≥ 200", f"{notes_per_s:.0f}", mark(notes_per_s >= 200)],
            ["long file, times real time", "≥ 2,000×", f"{realtime:,.0f}×", mark(realtime >= 2000)],
            ["WER vs faster-whisper's, worst file", "≤ +1 point", f"{worst:+.1f} points", mark(worst <= 1.0)],
        ]),
        "",
        table(["Run", "Wall", "Notes/s"], [
            ["batched (`transcribe_batch`)", f"{batched_s:.2f} s", f"{notes_per_s:.0f}"],
            ["one note per call", f"{single_s:.2f} s (scaled)", f"{len(notes) / single_s:.1f}"],
            [f"long file, {minutes:g} min", f"{long_s:.2f} s", f"{realtime:,.0f}× real time"],
        ]),
        f"\nPeak GPU memory: {memory}.\n",
        table(["File", "WER transformers", "WER faster-whisper (CPU)"], rows),
        "\n### Machine\n",
        format_machine(machine_info()),
        f"- GPU: {torch.cuda.get_device_name() if device == 'cuda' else 'none (--quick)'}",
    ])
    print(text)
    if not args.no_write and not args.quick:
        write_section("gpu", text)


def _notes(speech: list[np.ndarray], count: int) -> list[np.ndarray]:
    chooser = random.Random(7)
    notes = []
    for _ in range(count):
        source = speech[chooser.randrange(len(speech))]
        length = int(chooser.uniform(2, 12) * SAMPLE_RATE)
        start = chooser.randrange(max(1, len(source) - length))
        notes.append(source[start : start + length])
    return notes


def _repeat(speech: list[np.ndarray], seconds: float) -> np.ndarray:
    joined = np.concatenate(speech)
    return np.tile(joined, int(seconds * SAMPLE_RATE // len(joined)) + 1)[: int(seconds * SAMPLE_RATE)]


def _accuracy(engine: TransformersWhisperEngine, model: str) -> tuple[list[list[str]], float]:
    from faster_whisper import WhisperModel

    references = json.loads((AUDIO_DIR / "references.json").read_text())
    plain = WhisperModel(str(resolve_model(model, MODELS_DIR).path), device="cpu", compute_type="int8")
    rows, worst = [], -100.0
    for name, key in (("jfk.flac", "text"), ("hotwords.mp3", "text")):
        audio = decode_audio((AUDIO_DIR / name).read_bytes(), max_duration_s=600).samples
        ours = wer(references[name][key], engine.transcribe(audio, TranscribeOptions(language="en")).text)
        theirs = wer(references[name][key], " ".join(s.text for s in plain.transcribe(audio, language="en")[0]))
        worst = max(worst, (ours - theirs) * 100)
        rows.append([name, f"{ours:.1%}", f"{theirs:.1%}"])
    return rows, worst


if __name__ == "__main__":
    main()
