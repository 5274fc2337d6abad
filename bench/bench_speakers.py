"""Speaker labels on multi-speaker mono recordings with known turns: DER, words to the right speaker, count.

    python -m bench.bench_speakers [--model base] [--only-voices] [--no-write]

The recordings are built here from real speech in ../shared/audio (the two voices of stereo_diarization.wav,
JFK, the English and the German speaker of multilingual.mp3, hotwords.mp3) and two distinct espeak-ng voices:
1 to 4 speakers, turns of 2–20 s cut at the VAD's pauses, some overlapping by up to 0.6 s, some with pauses.
The reference is where each turn was laid (its speech by the VAD). Measured per recording:

- DER: (missed + false alarm + confusion) / reference speech, 10 ms frames, no collar, the best one-to-one
  map of found voices to reference speakers; a frame where two speak counts as right when either is found
  (the diarizer gives one voice per moment);
- words right: of the transcript's words (word timestamps), the share whose label is the reference speaker
  at the word's middle (nearest turn in a pause), under the best map of labels to speakers;
- count: the number of labels found equals the number of speakers (one speaker: no labels);
- extra time: the service's pipeline (LocalRunner: decode, engine, quality pass, coverage check) with
  speakers on, against the same pipeline with speakers off and no word times (what an ordinary request
  costs), one after the other on the same engine, in alternating order.

Targets (issue 18): ≥ 90 % of words right, count right on ≥ 80 % of recordings, ≤ 35 % extra time.
Writes the `speakers` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import AUDIO_DIR, MODELS_DIR, format_machine, machine_info, mark, require_audio, table, write_section
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, decode_audio, decode_channels
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.speakers.encoder import shared_encoder
from chatscribe.core.speakers.voices import find_voices, speech_spans
from chatscribe.core.transcript import Transcript

HOUR = 3600.0
FRAME = 160
ESPEAK = {
    # distinct to the encoder (cosine similarity of whole clips about 0.65); most espeak voices are not
    "ES-high": ("en+f2", "75"),
    "ES-low": ("en-us+m3", "25"),
}
ESPEAK_TEXT = [
    "Before the meeting ends I want to go through the numbers once more.",
    "The figures for March look wrong to me, and nobody has checked them yet.",
    "We agreed to ship the new release on Thursday, unless the tests fail again.",
    "Could you send me the draft of the contract by tomorrow morning?",
    "I think the customers in the northern region will like the new prices.",
    "Let us take a short break and come back to this question after lunch.",
    "The train was late again, so I missed the first half of the presentation.",
    "My sister moved to a small village near the coast last summer.",
]
PUBLISHED = (
    "pyannote.audio's published DER for its `speaker-diarization-3.1` pipeline (the Benchmark table of "
    "github.com/pyannote/pyannote-audio's README, in %): AMI headset mix 18.8, AMI single distant microphone "
    "22.4, CALLHOME (telephone calls) 28.4, DIHARD 3 21.7, VoxConverse 11.3, Earnings21 9.4, AISHELL-4 12.2, "
    "AliMeeting 24.4. Those are real meetings, calls and broadcasts with many speakers, far more overlap and "
    "natural turn-taking, scored on hours of audio; the recordings here are short, constructed, with clean "
    "turns and few overlaps, so the DER above is not comparable one to one and is not a claim to beat pyannote "
    "(it needs a hub account and is not offline-by-package; the encoder here is the older GE2E model)."
)


@dataclass(frozen=True, slots=True)
class Piece:
    speaker: str
    samples: np.ndarray


@dataclass(frozen=True, slots=True)
class Recording:
    name: str
    samples: np.ndarray
    turns: tuple[tuple[float, float, str], ...]
    """(start, end, speaker) of reference speech."""

    @property
    def speakers(self) -> set[str]:
        return {s for _, _, s in self.turns}


def _load(name: str) -> np.ndarray:
    return decode_audio((AUDIO_DIR / name).read_bytes(), max_duration_s=HOUR).samples


def _espeak(voice: str, pitch: str, text: str, folder: Path) -> np.ndarray:
    path = folder / f"{voice}-{pitch}-{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-s", "160", "-w", str(path), text], check=True)
    return decode_audio(path.read_bytes(), max_duration_s=HOUR).samples


def _cut(samples: np.ndarray, low_s: float, high_s: float) -> list[np.ndarray]:
    """Pieces of 2–20 s (between low_s and high_s) ending at the VAD's pauses."""
    spans = speech_spans(samples)
    pieces, start = [], None
    for a, b in spans:
        start = a if start is None else start
        if (b - start) / SAMPLE_RATE >= low_s:
            pieces.append(samples[start:b])
            start = None
        elif (b - start) / SAMPLE_RATE > high_s:
            start = None
    return [p for p in pieces if len(p) <= high_s * SAMPLE_RATE]


def sources(folder: Path) -> dict[str, list[np.ndarray]]:
    """Each reference speaker's pieces of speech."""
    stereo = decode_channels((AUDIO_DIR / "stereo_diarization.wav").read_bytes(), max_duration_s=HOUR)
    assert stereo is not None
    multilingual = _load("multilingual.mp3")
    half = 30 * SAMPLE_RATE
    pool = {
        "ML-en": _cut(multilingual[:half], 3, 15),
        "ML-de": _cut(multilingual[half:], 3, 15),
        "JFK": _cut(_load("jfk.flac"), 2, 8),
        "Left": [stereo.samples[0][: int(4.9 * SAMPLE_RATE)]],
        "Right": [stereo.samples[1][: int(2.6 * SAMPLE_RATE)]],
        "Hot": [_load("hotwords.mp3")],
    }
    for name, (voice, pitch) in ESPEAK.items():
        texts = ESPEAK_TEXT[::2] if name == "ES-high" else ESPEAK_TEXT[1::2]
        pool[name] = [_espeak(voice, pitch, t, folder) for t in texts]
    return pool


def build(name: str, pool: dict[str, list[np.ndarray]], order: list[str], *, overlap_s: float = 0.0,
          pause_s: float = 0.4) -> Recording:
    """Turns in `order` (speaker names), each the next unused piece of that speaker (reused when spent)."""
    used = dict.fromkeys(pool, 0)
    out = np.zeros(0, dtype=np.float32)
    turns = []
    for index, speaker in enumerate(order):
        pieces = pool[speaker]
        piece = pieces[used[speaker] % len(pieces)]
        used[speaker] += 1
        gap = -overlap_s if overlap_s and index % 2 else pause_s
        start = max(0, len(out) + int(gap * SAMPLE_RATE)) if index else 0
        end = start + len(piece)
        if end > len(out):
            out = np.concatenate([out, np.zeros(end - len(out), dtype=np.float32)])
        out[start:end] += piece
        for a, b in speech_spans(piece):
            turns.append(((start + a) / SAMPLE_RATE, (start + b) / SAMPLE_RATE, speaker))
    peak = float(np.abs(out).max()) or 1.0
    return Recording(name, (out / max(1.0, peak)).astype(np.float32), tuple(turns))


def recordings(pool: dict[str, list[np.ndarray]]) -> list[Recording]:
    return [
        build("interview (ML-en, ML-de)", pool, ["ML-en", "ML-de"] * 2),
        build("JFK and espeak", pool, ["JFK", "ES-high", "JFK", "ES-high", "JFK"]),
        build("two espeak voices", pool, ["ES-high", "ES-low"] * 3),
        build("call, overlaps (ML-en, JFK)", pool, ["ML-en", "JFK", "ML-en", "JFK", "ML-en"], overlap_s=0.6),
        build("3: ML-en, JFK, ES-low", pool, ["ML-en", "JFK", "ES-low", "ML-en", "JFK", "ES-low"]),
        build("3 with pauses: Hot, ML-de, ES-high", pool, ["ML-de", "Hot", "ES-high", "ML-de", "ES-high"],
              pause_s=1.5),
        build("3: Left, ML-de, ES-low", pool, ["Left", "ML-de", "ES-low", "ML-de", "ES-low"]),
        build("4: ML-en, ML-de, JFK, ES-high", pool, ["ML-en", "ML-de", "JFK", "ES-high", "ML-en", "ML-de"]),
        build("4: Left, Right, ML-en, ES-low", pool, ["ML-en", "Left", "ES-low", "Right", "ML-en", "ES-low"]),
        build("one speaker (ML-en)", pool, ["ML-en"] * 2),
    ]


# -- scoring ---------------------------------------------------------------------------------------------------


def _reference_frames(recording: Recording) -> list[set[str]]:
    frames: list[set[str]] = [set() for _ in range(len(recording.samples) // FRAME + 1)]
    for start, end, speaker in recording.turns:
        for f in range(int(start * 100), min(len(frames), int(end * 100))):
            frames[f].add(speaker)
    return frames


def _best_map(hyp: list[str], ref: list[str]) -> dict[str, str]:
    """The one-to-one map of hypothesis labels to reference speakers that agrees most often."""
    labels, speakers = sorted(set(hyp)), sorted(set(ref))
    pairs = list(zip(hyp, ref, strict=True))
    best: dict[str, str] = {}
    best_score = -1
    for chosen in itertools.permutations(speakers, min(len(labels), len(speakers))):
        for subset in itertools.combinations(labels, len(chosen)):
            mapping = dict(zip(subset, chosen, strict=True))
            score = sum(mapping.get(h) == r for h, r in pairs)
            if score > best_score:
                best, best_score = mapping, score
    return best


def der(recording: Recording, turns: list[tuple[float, float, str]]) -> float:
    ref = _reference_frames(recording)
    hyp: list[str | None] = [None] * len(ref)
    for start, end, label in turns:
        for f in range(int(start * 100), min(len(ref), int(end * 100))):
            hyp[f] = label
    both = [(h, sorted(r)[0]) for h, r in zip(hyp, ref, strict=True) if h is not None and r]
    mapping = _best_map([h for h, _ in both], [r for _, r in both]) if both else {}
    total = sum(1 for r in ref if r)
    missed = sum(1 for h, r in zip(hyp, ref, strict=True) if r and h is None)
    false_alarm = sum(1 for h, r in zip(hyp, ref, strict=True) if h is not None and not r)
    confusion = sum(1 for h, r in zip(hyp, ref, strict=True) if h is not None and r and mapping.get(h) not in r)
    return (missed + false_alarm + confusion) / max(1, total)


def _reference_at(recording: Recording, t: float) -> str:
    inside = [s for a, b, s in recording.turns if a <= t <= b]
    if inside:
        return inside[0]
    return min(recording.turns, key=lambda turn: min(abs(t - turn[0]), abs(t - turn[1])))[2]


def words_right(recording: Recording, transcript: Transcript) -> tuple[float, int]:
    hyp, ref = [], []
    for segment in transcript.segments:
        for word in segment.words:
            middle = (word.start + word.end) / 2
            hyp.append(segment.speaker or "-")
            ref.append(_reference_at(recording, middle))
    if not hyp:
        return 0.0, 0
    # A word in an overlap is right under either speaker there.
    options = [{s for a, b, s in recording.turns if a <= (w.start + w.end) / 2 <= b} or {r}
               for w, r in zip((w for s in transcript.segments for w in s.words), ref, strict=True)]
    mapping = _best_map(hyp, ref)
    right = sum(mapping.get(h) in opts for h, opts in zip(hyp, options, strict=True))
    return right / len(hyp), len(hyp)


# -- the run ---------------------------------------------------------------------------------------------------


def _wav(samples: np.ndarray) -> bytes:
    from tests.audio_tools import to_wav

    return to_wav(samples)


async def _transcribe(runner: LocalRunner, data: bytes, duration: float, options: TranscribeOptions
                      ) -> tuple[Transcript, float]:
    started = time.perf_counter()
    transcript = await runner.run(Work("bench", data, duration, options))
    return transcript, time.perf_counter() - started


async def run(model: str, only_voices: bool) -> tuple[str, bool]:
    with tempfile.TemporaryDirectory() as folder:
        pool = sources(Path(folder))
    encoder = shared_encoder()
    runner = None
    if not only_voices:
        engine = FasterWhisperEngine(resolve_model(model, MODELS_DIR), device="cpu", workers=1)
        runner = LocalRunner(engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batching="off")
    rows, ders, rights, counts, plain_total, extra_total, step_total = [], [], [], [], 0.0, 0.0, 0.0
    words_total = 0
    for recording in recordings(pool):
        duration = len(recording.samples) / SAMPLE_RATE
        started = time.perf_counter()
        voices = find_voices(recording.samples, encoder)
        diarize_s = time.perf_counter() - started
        names = [chr(65 + t.speaker) for t in voices.turns]
        d = der(recording, [(t.start, t.end, n) for t, n in zip(voices.turns, names, strict=True)])
        ders.append(d)
        expected = len(recording.speakers)
        if runner is None:
            found = voices.count
            counts.append(found == expected)
            rows.append([recording.name, f"{duration:.0f}", expected, found, f"{d:.1%}", "–", f"{diarize_s:.2f}",
                         "–", "–"])
            print(rows[-1], flush=True)
            continue
        data = _wav(recording.samples)
        asked = TranscribeOptions(word_timestamps=True, speakers="on")  # word times to score; the step asks them anyway
        step_before = runner.metrics.speaker_seconds._sum.get()
        if len(rows) % 2:  # alternate which side goes first, so a drift in the machine's load favours neither
            labelled, labelled_s = await _transcribe(runner, data, duration, asked)
            _, plain_s = await _transcribe(runner, data, duration, TranscribeOptions())
        else:
            _, plain_s = await _transcribe(runner, data, duration, TranscribeOptions())
            labelled, labelled_s = await _transcribe(runner, data, duration, asked)
        step_total += runner.metrics.speaker_seconds._sum.get() - step_before
        found = max(1, len(labelled.speakers))
        counts.append(found == expected)
        share, words = words_right(recording, labelled)
        rights.append((share, words))
        words_total += words
        plain_total += plain_s
        extra_total += labelled_s - plain_s
        rows.append([recording.name, f"{duration:.0f}", expected, found, f"{d:.1%}", f"{share:.1%} of {words}",
                     f"{diarize_s:.2f}", f"{plain_s:.1f}", f"{(labelled_s - plain_s) / plain_s:+.0%}"])
        print(rows[-1], flush=True)
    count_share = sum(counts) / len(counts)
    mean_der = float(np.mean(ders))
    lines = [table(["recording", "s", "speakers", "found", "DER", "words right", "voices s", "plain s", "extra"],
                   rows), ""]
    passed = count_share >= 0.8
    lines.append(f"- Speaker count right on {sum(counts)} of {len(counts)} recordings ({count_share:.0%}; target "
                 f"≥ 80 %) {mark(count_share >= 0.8)}")
    lines.append(f"- Mean DER {mean_der:.1%} (no collar; overlapped frames right under either speaker)")
    if rights:
        word_share = sum(s * n for s, n in rights) / max(1, words_total)
        extra = extra_total / plain_total
        passed = passed and word_share >= 0.9 and extra <= 0.35
        lines.append(f"- Words to the right speaker: {word_share:.1%} of {words_total} (target ≥ 90 %) "
                     f"{mark(word_share >= 0.9)}")
        lines.append(f"- Time added on top of transcription: {extra:+.0%} ({extra_total:.1f} s on {plain_total:.1f} s "
                     f"of plain transcription; target ≤ 35 %) {mark(extra <= 0.35)}; of it, the speaker step itself "
                     f"(VAD, voice vectors, clustering, labels) {step_total:.1f} s ({step_total / plain_total:.0%}), "
                     "the rest is the word times the step asks the engine for and the difference between two runs "
                     "on a shared, loaded machine")
    lines.append(f"- {PUBLISHED}")
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--only-voices", action="store_true", help="diarization only: no transcription, no words")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    require_audio()
    started = time.perf_counter()
    body, passed = asyncio.run(run(args.model, args.only_voices))
    took = time.perf_counter() - started
    section = (f"## Speaker labels (`bench/bench_speakers.py`, {args.model}, CPU)\n\n"
               f"{format_machine(machine_info())}; one run took {took:.0f} s.\n\n{body}\n")
    print(section)
    if not args.no_write and not args.only_voices:
        write_section("speakers", section)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
