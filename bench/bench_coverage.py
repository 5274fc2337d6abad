"""How much of the speech each side puts words on: chatscribe against plain faster-whisper, one run.

    python -m bench.bench_coverage [--model tiny.en] [--burst all|long|none] [--no-write]

Per file: the seconds of speech Silero VAD hears (the mask chatscribe's quality pass makes), the share of
them under a transcript segment with text, and the longest stretch of speech without words (pauses under
1 s bridged, as core/coverage.py counts them). chatscribe runs its real pipeline (LocalRunner: decode,
engine, quality pass, coverage check); plain faster-whisper is `WhisperModel(path, device="cpu",
compute_type="int8").transcribe(file)` with its defaults. Files: the shared recordings, the 43 s voice note
of issue 13 (multilingual.mp3's English half, jfk.flac, 1.5 s of silence, as OGG/Opus), and the long and
medium notes of the burst workload (bench/burst_notes.py). Writes the `coverage-<model>` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from dataclasses import dataclass

import av
import numpy as np

from bench.burst_notes import scenarios
from bench.report import AUDIO_DIR, MODELS_DIR, format_machine, machine_info, mark, require_audio, table, write_section
from chatscribe.core.coverage import MIN_GAP_S, covered_mask, uncovered
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.jobs.runner import LocalRunner, Work
from chatscribe.core.media import SAMPLE_RATE, decode_audio
from chatscribe.core.metrics import Metrics
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import FRAME_S, speech_mask
from chatscribe.core.transcript import Gap, Segment

FILES = ("jfk.flac", "jfk_voice.ogg", "multilingual.mp3", "multilingual_voice.ogg", "hotwords.mp3")
NOTE_NAME = "note_43s.ogg (issue 13)"
HOUR = 3600.0
SLACK_S = 0.5
"""The lenient measure widens every segment by this on each side: Whisper's segment times, tight around
VAD chunks on one side and end-to-end on the other, then stop counting as missed speech."""


@dataclass(frozen=True, slots=True)
class Side:
    covered_s: float
    longest_bare_s: float
    """Longest stretch of speech without words that no recorded gap names."""
    gaps: tuple[Gap, ...]
    seconds: float
    bare: tuple[Gap, ...]
    segments: tuple[Segment, ...]
    lenient_s: float
    """Speech seconds within SLACK_S of a segment with text."""


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
        plain_segments, _ = plain.transcribe(io.BytesIO(data))
        plain_side = _side(speech, [Segment(s.start, s.end, s.text) for s in plain_segments], (),
                           time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = asyncio.run(runner.run(Work(name, data, len(samples) / SAMPLE_RATE, TranscribeOptions())))
        our_side = _side(speech, list(ours.segments), ours.gaps, time.perf_counter() - t0)
        rows.append((name, len(samples) / SAMPLE_RATE, float(speech.sum()) * FRAME_S, plain_side, our_side))
        print(f"{name}: plain {plain_side.covered_s:.1f} s, chatscribe {our_side.covered_s:.1f} s of "
              f"{rows[-1][2]:.1f} s ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    runner.close()
    markdown = _render(args.model, info, rows, time.monotonic() - started)
    print(markdown)
    if not args.no_write:
        write_section(f"coverage-{args.model}", markdown)
        print(f"wrote the coverage-{args.model} section of docs/benchmarks.md", file=sys.stderr)


def _decoded(data: bytes) -> np.ndarray:
    return decode_audio(data, max_duration_s=HOUR).samples


def _side(speech: np.ndarray, segments: list[Segment], gaps: tuple[Gap, ...], seconds: float) -> Side:
    covered = covered_mask(segments, len(speech))
    bare = [g for g in uncovered(speech, covered, min_s=0.0)
            if not any(r.start <= g.start and g.end <= r.end for r in gaps)]
    return Side(float((speech & covered).sum()) * FRAME_S, max((g.end - g.start for g in bare), default=0.0),
                gaps, seconds, tuple(bare), tuple(segments), _lenient(speech, segments))


def _lenient(speech: np.ndarray, segments: list[Segment]) -> float:
    widened = [Segment(max(0.0, s.start - SLACK_S), s.end + SLACK_S, s.text) for s in segments]
    return float((speech & covered_mask(widened, len(speech))).sum()) * FRAME_S


def _what_plain_wrote(plain: Side, ours: Side) -> str:
    """Plain's text over the stretches chatscribe left without words: what the extra coverage consists of."""
    bare = [g for g in ours.bare if g.end - g.start >= 0.1]
    texts = [f"{s.start:.1f}–{s.end:.1f} s “{s.text.strip()}”" for s in plain.segments
             if s.text.strip() and any(s.start < g.end and g.start < s.end for g in bare)]
    return "; ".join(texts) or "–"


def _render(model: str, info: dict[str, str], rows: list[tuple[str, float, float, Side, Side]],
            elapsed: float) -> str:
    def share(side: Side, speech_s: float) -> str:
        return f"{side.covered_s / speech_s:.1%}" if speech_s else "–"

    def gaps(side: Side) -> str:
        return ", ".join(f"{g.start:.1f}–{g.end:.1f} s" for g in side.gaps) or "–"

    def lenient(side: Side, speech_s: float) -> str:
        return f"{side.lenient_s / speech_s:.1%}" if speech_s else "–"

    body = [
        (name, f"{audio_s:.1f} s", f"{speech_s:.1f} s", share(p, speech_s), share(c, speech_s),
         f"{lenient(p, speech_s)} / {lenient(c, speech_s)}",
         f"{p.longest_bare_s:.1f} s", f"{c.longest_bare_s:.1f} s", gaps(c), f"{p.seconds:.1f} s / {c.seconds:.1f} s")
        for name, audio_s, speech_s, p, c in rows
    ]
    below = [(name, p, c) for name, _, _, p, c in rows if c.covered_s < p.covered_s - FRAME_S / 2]
    worst = max(c.longest_bare_s for *_, c in rows)
    behind = ", ".join(f"{name} ({p.covered_s - c.covered_s:.2f} s)" for name, p, c in below)
    targets = table(("Target", "Goal", "Measured", ""), [
        ("Speech covered by words, chatscribe vs plain, every file", "≥ plain",
         f"below plain on {behind}" if below else "≥ plain on every file", mark(not below)),
        ("Longest stretch of speech without words and without a recorded gap", f"< {MIN_GAP_S} s", f"{worst:.1f} s",
         mark(worst < MIN_GAP_S)),
    ])
    return f"""## Coverage: speech with words, chatscribe vs plain faster-whisper (`{model}`, int8, CPU)

Measured in one run of {elapsed / 60:.1f} min, one pass per file and side. Speech is where Silero VAD hears it (the
mask of chatscribe's quality pass, on the same decoded samples for both sides); a second of speech is covered when
a segment with text spans it. chatscribe runs its whole pipeline (LocalRunner: decode, engine, quality pass,
coverage check, which transcribes a stretch of ≥ {MIN_GAP_S} s of speech without words again on its own and
records what still has none as a gap named in the answer); plain faster-whisper is
`WhisperModel(path, device="cpu", compute_type="int8").transcribe(file)` with its defaults (no VAD).

{format_machine(info)}

### Targets

{targets}

### Per file

{table(("File", "Audio", "Speech (VAD)", "Covered, plain", "Covered, chatscribe",
        f"Within {SLACK_S} s of a segment, plain / chatscribe", "Longest bare, plain",
        "Longest bare, chatscribe", "Gaps named by chatscribe", "Time plain / chatscribe"), body)}

{_below_note(below)}Longest bare: the longest stretch of speech without a word (pauses under 1 s inside it
bridged); for chatscribe, stretches it names as a gap ("could not be transcribed", with the time) are not
counted. Plain faster-whisper's segments are counted as they come, text invented over noise included.
"Within {SLACK_S} s of a segment": the same share with every segment widened by {SLACK_S} s on each side, for
both sides (not a target): with its VAD on, chatscribe's segments end where each speech chunk ends, while plain's
run end to end, so pauses between segments that Silero still marks as speech count against chatscribe alone.
"""


def _below_note(below: list[tuple[str, Side, Side]]) -> str:
    if not below:
        return ""
    def stretches(side: Side) -> str:
        return ", ".join(f"{g.start:.1f}–{g.end:.1f} s" for g in side.bare if g.end - g.start >= 0.1) or "–"

    lines = "\n".join(f"| {name} | {stretches(c)} | "
                      f"{_what_plain_wrote(p, c)} |" for name, p, c in below)
    return f"""Where plain covers more: chatscribe's stretches of speech without words (0.1 s and longer) and what
plain wrote over them:

| File | chatscribe's stretches without words | plain's segments over them |
|---|---|---|
{lines}

"""


if __name__ == "__main__":
    main()
