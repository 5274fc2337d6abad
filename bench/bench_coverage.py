"""How much of the speech each side puts words on: chatscribe against plain faster-whisper, one run.

    python -m bench.bench_coverage [--model tiny.en] [--burst all|long|none] [--no-write]

Per file: the seconds of speech Silero VAD hears (the mask chatscribe's quality pass makes), the share of
them that a word covers, the number of words, and the longest stretch of speech without words (pauses
under 1 s bridged, as core/coverage.py counts them). Both sides are asked for word timestamps and measured
the same way: a 10 ms frame of speech is covered when the span of a word, widened by TOLERANCE_S on each
side, overlaps it. Segment spans are not used, since they measure how each side cuts segments (chatscribe's
end where each VAD chunk ends, plain's run end to end) rather than where words are. chatscribe runs its
real pipeline (LocalRunner: decode, engine, quality pass, coverage check) with `word_timestamps=True`;
plain faster-whisper is `WhisperModel(path, device="cpu", compute_type="int8").transcribe(file,
word_timestamps=True)`, otherwise its defaults. Files: the shared recordings, the 43 s voice note of
issue 13 (multilingual.mp3's English half, jfk.flac, 1.5 s of silence, as OGG/Opus), and the long and
medium notes of the burst workload (bench/burst_notes.py). Writes the `coverage-<model>` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import io
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np

from bench.burst_notes import scenarios
from bench.report import AUDIO_DIR, MODELS_DIR, format_machine, machine_info, mark, require_audio, table, write_section
from chatscribe.core.coverage import MIN_GAP_S, uncovered
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import FRAME_S, speech_mask
from chatscribe.core.transcript import Gap, Segment, Word

FILES = ("jfk.flac", "jfk_voice.ogg", "multilingual.mp3", "multilingual_voice.ogg", "hotwords.mp3")
NOTE_NAME = "note_43s.ogg (issue 13)"
HOUR = 3600.0
TOLERANCE_S = 0.2
"""Each word's span is widened by this on each side, on both sides alike: Whisper's word times come from
cross-attention alignment and are often a frame or two off the sound, and a pause between two words inside
a sentence is still speech to Silero."""
OPTIONS = TranscribeOptions(word_timestamps=True)


@dataclass(frozen=True, slots=True)
class Side:
    covered_s: float
    """Speech seconds within TOLERANCE_S of a word."""
    longest_bare_s: float
    """Longest stretch of speech farther than TOLERANCE_S from a word that no recorded gap names."""
    longest_exact_s: float
    """The same with the words' spans as they are, without the tolerance."""
    gaps: tuple[Gap, ...]
    seconds: float
    bare: tuple[Gap, ...]
    words: tuple[Word, ...]
    wordless: int
    """Segments with text but no word times (counted as covering nothing)."""


def voice_note() -> bytes:
    """The 43 s note: English, then the JFK sentence, then a pause, as a chat's OGG/Opus voice message."""
    english = _decoded((AUDIO_DIR / "multilingual.mp3").read_bytes())[: int(29.9 * SAMPLE_RATE)]
    samples = np.concatenate([english, _decoded((AUDIO_DIR / "jfk.flac").read_bytes()),
                              np.zeros(int(1.5 * SAMPLE_RATE), np.float32)])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.bit_rate = 24000
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((np.clip(samples, -1, 1) * 32767).astype("<i2").reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


BURST_FROM_S = {"all": 10.0, "long": 30.0}
"""The burst notes taken: all of 10 s and more (a window boundary is rare below), or only the long ones."""


def workload(burst: str) -> list[tuple[str, bytes]]:
    files = [(name, (AUDIO_DIR / name).read_bytes()) for name in FILES] + [(NOTE_NAME, voice_note())]
    if burst in BURST_FROM_S:
        notes = sorted(scenarios(AUDIO_DIR)[0].notes, key=lambda n: n.index)
        files += [(f"burst note {n.index} ({n.duration_s:.0f} s)", n.data) for n in notes
                  if n.duration_s >= BURST_FROM_S[burst]]
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--burst", choices=("all", "long", "none"), default="all",
                        help="the burst workload's notes of 10 s and more (all), of 30 s and more (long), or none")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    require_audio()
    info = machine_info()
    started = time.monotonic()
    from faster_whisper import WhisperModel

    model = resolve_model(args.model, MODELS_DIR)
    engine = FasterWhisperEngine(model, device="cpu")
    plain = WhisperModel(str(model.path), device="cpu", compute_type="int8")
    runner = LocalRunner(engine, slots=1, max_duration_s=HOUR, metrics=Metrics(), batching="off")
    rows = []
    for name, data in workload(args.burst):
        samples = _decoded(data)
        speech = speech_mask(samples)
        t0 = time.perf_counter()
        plain_segments, _ = plain.transcribe(io.BytesIO(data), word_timestamps=True)
        plain_side = _side(speech, [_segment(s) for s in plain_segments], (), time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = asyncio.run(runner.run(Work(name, data, len(samples) / SAMPLE_RATE, OPTIONS)))
        our_side = _side(speech, list(ours.segments), ours.gaps, time.perf_counter() - t0)
        rows.append((name, len(samples) / SAMPLE_RATE, float(speech.sum()) * FRAME_S, plain_side, our_side))
        print(f"{name}: plain {plain_side.covered_s:.1f} s ({len(plain_side.words)} words), chatscribe "
              f"{our_side.covered_s:.1f} s ({len(our_side.words)} words) of {rows[-1][2]:.1f} s "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    runner.close()
    markdown = _render(args.model, info, rows, time.monotonic() - started)
    print(markdown)
    if not args.no_write:
        write_section(f"coverage-{args.model}", markdown)
        print(f"wrote the coverage-{args.model} section of docs/benchmarks.md", file=sys.stderr)


def _decoded(data: bytes) -> np.ndarray:
    return decode_audio(data, max_duration_s=HOUR).samples


def _segment(raw: object) -> Segment:
    """A plain faster-whisper segment as a chatscribe Segment, its words kept."""
    words = tuple(Word(w.start, w.end, w.word, w.probability) for w in (getattr(raw, "words", None) or ()))
    return Segment(raw.start, raw.end, raw.text, words=words)  # type: ignore[attr-defined]


def word_mask(words: Sequence[Word], frames: int, pad_s: float = TOLERANCE_S) -> np.ndarray:
    """Per speech-mask frame (10 ms): does some word's span, widened by `pad_s` each side, overlap it?"""
    covered = np.zeros(frames, dtype=bool)
    for word in words:
        first = max(0, math.floor((word.start - pad_s) / FRAME_S))
        last = min(frames, math.ceil((word.end + pad_s) / FRAME_S))
        covered[first:last] = True
    return covered


def _side(speech: np.ndarray, segments: list[Segment], gaps: tuple[Gap, ...], seconds: float) -> Side:
    spoken = [s for s in segments if s.text.strip()]
    words = tuple(w for s in spoken for w in s.words if w.text.strip())
    covered = word_mask(words, len(speech))
    bare = _bare(speech, covered, gaps)
    exact = _bare(speech, word_mask(words, len(speech), pad_s=0.0), gaps)
    return Side(float((speech & covered).sum()) * FRAME_S, _longest(bare), _longest(exact), gaps, seconds,
                tuple(bare), words, sum(1 for s in spoken if not s.words))


def _bare(speech: np.ndarray, covered: np.ndarray, gaps: tuple[Gap, ...]) -> list[Gap]:
    """Stretches of speech without words, the recorded gaps' time taken out (a word's frame either side of a
    gap is not a new stretch)."""
    outside = speech.copy()
    for gap in gaps:
        outside[max(0, math.floor(gap.start / FRAME_S)) : math.ceil(gap.end / FRAME_S)] = False
    return uncovered(outside, covered, min_s=0.0)


def _longest(stretches: Sequence[Gap]) -> float:
    return max((g.end - g.start for g in stretches), default=0.0)


def _what_plain_said(plain: Side, ours: Side) -> str:
    """Plain's words over the stretches chatscribe left without words: what plain's extra coverage is."""
    bare = [g for g in ours.bare if g.end - g.start >= 0.1]
    said = [w for w in plain.words
            if any(w.start - TOLERANCE_S < g.end and g.start < w.end + TOLERANCE_S for g in bare)]
    return " ".join(f"{w.start:.1f}–{w.end:.1f} “{w.text.strip()}”" for w in said) or "–"


def _only_plain(plain: Side, ours: Side) -> str:
    """Plain's words that chatscribe's text lacks (a word diff, case and punctuation ignored), with times.

    Empty where both have the same words: then plain covers more only because its word times are wider.
    """
    def key(word: Word) -> str:
        return "".join(c for c in word.text.lower() if c.isalnum())

    theirs = [w for w in plain.words if key(w)]
    mine = [key(w) for w in ours.words if key(w)]
    matcher = difflib.SequenceMatcher(a=[key(w) for w in theirs], b=mine, autojunk=False)
    missing = [theirs[i] for op, i1, i2, _, _ in matcher.get_opcodes() if op in ("delete", "replace")
               for i in range(i1, i2)]
    return " ".join(f"{w.start:.1f} “{w.text.strip()}”" for w in missing) or "none"


def _render(model: str, info: dict[str, str], rows: list[tuple[str, float, float, Side, Side]],
            elapsed: float) -> str:
    def share(side: Side, speech_s: float) -> str:
        return f"{side.covered_s / speech_s:.1%}" if speech_s else "–"

    def longest(side: Side) -> str:
        return f"{side.longest_bare_s:.1f} s ({side.longest_exact_s:.1f} s)"

    def gaps(side: Side) -> str:
        return ", ".join(f"{g.start:.1f}–{g.end:.1f} s" for g in side.gaps) or "–"

    body = [
        (name, f"{audio_s:.1f} s", f"{speech_s:.1f} s", share(p, speech_s), share(c, speech_s),
         f"{len(p.words)} / {len(c.words)}", longest(p), longest(c), gaps(c),
         f"{p.seconds:.1f} s / {c.seconds:.1f} s")
        for name, audio_s, speech_s, p, c in rows
    ]
    below = [(name, p, c) for name, _, _, p, c in rows if c.covered_s < p.covered_s - FRAME_S / 2]
    worst = max(c.longest_bare_s for *_, c in rows)
    worst_exact = max(rows, key=lambda row: row[4].longest_exact_s)
    behind = ", ".join(f"{name} ({p.covered_s - c.covered_s:.2f} s)" for name, p, c in below)
    wordless = sum(p.wordless + c.wordless for *_, p, c in rows)
    targets = table(("Target", "Goal", "Measured", ""), [
        ("Speech covered by words, chatscribe vs plain, every file", "≥ plain",
         f"below plain on {behind}" if below else "≥ plain on every file", mark(not below)),
        ("Longest stretch of speech without words and without a recorded gap", f"< {MIN_GAP_S} s",
         f"{worst:.1f} s ({worst_exact[4].longest_exact_s:.1f} s without the tolerance, {worst_exact[0]})",
         mark(worst < MIN_GAP_S)),
    ])
    wordless_note = (f" {wordless} segment(s) with text came without word times and count as covering nothing."
                     if wordless else " Every segment with text came with word times.")
    return f"""## Coverage: speech with words, chatscribe vs plain faster-whisper (`{model}`, int8, CPU)

Measured in one run of {elapsed / 60:.1f} min, one pass per file and side, both sides asked for word timestamps.
Speech is where Silero VAD hears it (the mask of chatscribe's quality pass, on the same decoded samples for both
sides), in 10 ms frames; a frame of speech is covered when a word's span, widened by **{TOLERANCE_S} s on each
side** (the tolerance, the same for both sides), overlaps it. Segment spans are not counted: chatscribe's
segments end where each VAD chunk ends and plain's run end to end, which says how each cuts segments, not
where the words are. chatscribe runs its whole pipeline (LocalRunner: decode, engine, quality pass, coverage
check, which transcribes a stretch of ≥ {MIN_GAP_S} s of speech without words again on its own and records what
still has none as a gap named in the answer) with `TranscribeOptions(word_timestamps=True)`; plain
faster-whisper is `WhisperModel(path, device="cpu", compute_type="int8").transcribe(file,
word_timestamps=True)`, otherwise its defaults (no VAD).{wordless_note}

{format_machine(info)}

### Targets

{targets}

### Per file

{table(("File", "Audio", "Speech (VAD)", "Covered, plain", "Covered, chatscribe", "Words, plain / chatscribe",
        "Longest bare, plain (no tolerance)", "Longest bare, chatscribe (no tolerance)", "Gaps named by chatscribe",
        "Time plain / chatscribe"), body)}

{_below_note(below)}Longest bare: the longest stretch of speech more than {TOLERANCE_S} s from any word (pauses
under 1 s inside it bridged), and in brackets the same with the words' spans as they are (closer to what
chatscribe's coverage check sees; it transcribes again from {MIN_GAP_S} s); for chatscribe, stretches it names
as a gap ("could not be transcribed", with the time) are not counted. Plain faster-whisper's words are counted
as they come, text invented over noise included (plain has no quality pass); chatscribe's words are those of
its answer, after the quality pass. With word times asked for, chatscribe's coverage check measures by words
too (without them, by segments).
"""


def _below_note(below: list[tuple[str, Side, Side]]) -> str:
    if not below:
        return ""

    def stretches(side: Side) -> str:
        return ", ".join(f"{g.start:.1f}–{g.end:.1f} s" for g in side.bare if g.end - g.start >= 0.1) or "–"

    lines = "\n".join(f"| {name} | {stretches(c)} | {_what_plain_said(p, c)} | {_only_plain(p, c)} |"
                      for name, p, c in below)
    return f"""Where plain covers more: chatscribe's stretches of speech without words (0.1 s and longer), plain's
words over them (start–end in seconds), and the words of plain's text that chatscribe's text lacks (a word
diff, case and punctuation ignored; "none" where both have the same words and only the word times differ):

| File | chatscribe's stretches without words | plain's words there | plain's words missing from chatscribe's text |
|---|---|---|---|
{lines}

"""


if __name__ == "__main__":
    main()
