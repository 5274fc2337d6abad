"""Live transcription: a speaker played into /v1/realtime at real-time pace, with the official client.

    python -m bench.bench_live [--model base] [--rounds 2] [--sessions 4] [--no-write]

The speaker says the shared recordings (jfk.flac, hotwords.mp3, resampled to 24 kHz) with short pauses,
`--rounds` times, each round with a different least-significant-bit dither so that no utterance is
answered from the cache. It measures, per utterance, the seconds from the end of the speech to its
`completed` event (this includes the server VAD's silence_duration_ms, the wait any VAD needs to know
speech has ended) and from `speech_stopped` to `completed` (the transcription alone); then the same with
`--sessions` speakers at once; and the word error rate of the live transcript against the same audio
transcribed as one file. Writes the `live-MODEL` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from openai import AsyncOpenAI

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
from chatscribe.bots.http import HttpServer, create_app
from chatscribe.bots.openai_upload import fetcher
from chatscribe.core.config import Settings
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.jobs import Work
from chatscribe.core.live import pcm16_wav
from chatscribe.core.media import MediaRequest
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.service import TranscriptionService
from tests.audio_tools import pcm16
from tests.wer import wer

RATE = 24_000
CHUNK = RATE // 10  # 100 ms, as a browser or the OpenAI examples send it
PAUSE_S = 1.5
SILENCE_MS = 500  # OpenAI's default server_vad silence_duration_ms
PIECES = ("jfk.flac", "hotwords.mp3")
KEYS = tuple(f"bench-live-{n}" for n in range(16))
"""One key per speaker: each is one person to the fair scheduler, as separate users would be."""
TARGET_ONE_S = 1.5
TARGET_MANY_S = 3.0
TARGET_WER_POINTS = 2.0


@dataclass
class Run:
    """What one speaker saw: per utterance, latencies in seconds, and the transcript."""

    key: str = ""
    from_speech_end: list[float] = field(default_factory=list)
    from_stopped: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)
    """Monotonic time of each answered utterance's speech_stopped, in order."""
    texts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """The sentences of utterances that got no transcript (failed events), and of any left unanswered."""
    waited: list[float] = field(default_factory=list)
    """Per utterance, seconds from speech_stopped until the runner began it (queued behind others)."""


class Starts:
    """When the runner began each utterance, per caller (the runner's on_batch hook): the k-th work of a
    caller is its session's k-th utterance, since a session transcribes its utterances in order."""

    def __init__(self) -> None:
        self.at: dict[str, list[float]] = {}
        self.batch_sizes: list[int] = []

    def __call__(self, batch: tuple[Work, ...]) -> None:
        now = time.monotonic()
        self.batch_sizes.append(len(batch))
        for work in batch:
            self.at.setdefault(work.chat_id, []).append(now)

    def attribute(self, run: Run) -> None:
        caller = "key:" + hashlib.sha256(run.key.encode()).hexdigest()[:12]  # bots/http_state.check_api_key
        starts = self.at.get(caller, [])
        run.waited = [max(0.0, start - stopped) for start, stopped in zip(starts, run.stopped, strict=False)]


def speaker(rounds: int, seed: int) -> tuple[bytes, str]:
    """The PCM16 the speaker says and its reference text."""
    references = json.loads((AUDIO_DIR / "references.json").read_text())
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.int16)
    rng = np.random.default_rng(seed)
    parts, words = [], []
    for _ in range(rounds):
        for name in PIECES:
            speech = np.frombuffer(pcm16(AUDIO_DIR / name, RATE), dtype="<i2").astype(np.int32)
            dither = rng.integers(-1, 2, size=speech.shape)
            parts += [np.clip(speech + dither, -32768, 32767).astype(np.int16), pause]
            words.append(references[name]["text"])
    return np.concatenate(parts).astype("<i2").tobytes(), " ".join(words)


async def speak(url: str, pcm: bytes, key: str) -> Run:
    """Play `pcm` into a live session at real-time pace; collect each utterance's latencies."""
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    run = Run(key=key)
    async with client.realtime.connect(extra_query={"intent": "transcription"}, max_retries=0) as connection:
        await connection.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": RATE},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS},
        }}})
        started = time.monotonic()
        stopped_at: dict[str, float] = {}
        ends: dict[str, float] = {}
        finished = asyncio.Event()
        expected = asyncio.get_running_loop().create_future()

        async def listen() -> None:
            async for event in connection:
                now = time.monotonic()
                if event.type == "input_audio_buffer.speech_stopped":
                    stopped_at[event.item_id] = now
                    # The last speech sample was sent silence_duration_ms before the VAD could tell.
                    ends[event.item_id] = started + (event.audio_end_ms - SILENCE_MS) / 1000
                elif event.type == "conversation.item.input_audio_transcription.completed":
                    if event.item_id in ends:
                        run.from_speech_end.append(now - ends[event.item_id])
                        run.from_stopped.append(now - stopped_at[event.item_id])
                        run.stopped.append(stopped_at[event.item_id])
                    run.texts.append(event.transcript)
                elif event.type == "conversation.item.input_audio_transcription.failed":
                    run.failed.append(event.error.message)
                if expected.done() and len(run.texts) + len(run.failed) >= expected.result():
                    finished.set()
                elif event.type == "error":
                    print(f"error event: {event.error.message}", file=sys.stderr)

        listener = asyncio.create_task(listen())
        for index in range(0, len(pcm), CHUNK * 2):
            # Real-time pace: each piece leaves when a microphone would have delivered it.
            await asyncio.sleep(max(0.0, started + index / 2 / RATE - time.monotonic()))
            await connection.input_audio_buffer.append(audio=base64.b64encode(pcm[index:index + CHUNK * 2]).decode())
        expected.set_result(len(stopped_at))
        if len(run.texts) + len(run.failed) >= len(stopped_at):
            finished.set()
        try:
            await asyncio.wait_for(finished.wait(), timeout=120)
        except TimeoutError:
            run.failed += ["no answer within 120 s"] * (len(stopped_at) - len(run.texts) - len(run.failed))
        listener.cancel()
    return run


async def measure(model: str, rounds: int, sessions: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(_env_file=None, data_dir=Path(data_dir), model=model, device="cpu",  # type: ignore[call-arg]
                            http_port=0, api_keys=",".join(KEYS), user_rate="")
        engine = FasterWhisperEngine(resolve_model(model, MODELS_DIR), device="cpu")
        async with TranscriptionService(settings=settings, engine=engine) as service:
            starts = Starts()
            service.runner.on_batch = starts  # type: ignore[attr-defined]
            http = HttpServer(create_app(service=service, settings=settings), "127.0.0.1", 0)
            await http.start()
            url = f"http://127.0.0.1:{http.port}"
            try:
                pcm, reference = speaker(rounds, seed=0)
                # Warm-up: the VAD and the model load.
                await speak(url, speaker(1, seed=99)[0][: RATE * 2 * 3], KEYS[-1])
                plain = [await asyncio.to_thread(_plain_clip_s, model)]
                print(f"one speaker, {len(pcm) / 2 / RATE:.0f} s…", file=sys.stderr)
                one = await speak(url, pcm, KEYS[0])
                print(f"{sessions} speakers at once…", file=sys.stderr)
                many = await asyncio.gather(*(speak(url, speaker(rounds, seed=1 + n)[0], KEYS[1 + n])
                                              for n in range(sessions)))
                # The same with CHATSCRIBE_PACK_ACROSS_CONVERSATIONS=true (a single-tenant deployment): the
                # speakers' utterances may then share one decoding window on the CPU.
                print(f"{sessions} speakers at once, packed together…", file=sys.stderr)
                service.runner.pack_across_conversations = True  # type: ignore[attr-defined]
                packed = await asyncio.gather(*(speak(url, speaker(rounds, seed=100 + n)[0], KEYS[1 + sessions + n])
                                                for n in range(sessions)))
                wav = pcm16_wav(pcm, RATE)
                file_text = (await service.transcribe(MediaRequest(
                    platform="bench", chat_id="file", user_id="file", fetch=fetcher(wav), mime_type="audio/wav",
                    size_bytes=len(wav), file_name="speaker.wav"), TranscribeOptions(language="en"))).text
                plain.append(await asyncio.to_thread(_plain_clip_s, model))
            finally:
                await http.stop()
    for run in [one, *many, *packed]:
        starts.attribute(run)
    return {"one": one, "many": list(many), "packed": list(packed), "reference": reference, "file_text": file_text,
            "seconds": len(pcm) / 2 / RATE, "batch_sizes": starts.batch_sizes,
            "plain_clip_s": plain, "strategy": _strategy(service)}


def _strategy(service: TranscriptionService) -> str:
    batcher = getattr(service.runner, "batcher", None)
    known = getattr(batcher, "known_strategy", lambda: None)()
    return str(known or "not measured")


_plain: list[object] = []


def _plain_clip_s(model: str) -> float:
    """Plain faster-whisper (its defaults, the language given) on a 3 s utterance, median of 3: what this
    machine allows in this run, before and after the speakers (other work on a shared machine moves it)."""
    from faster_whisper import WhisperModel

    if not _plain:
        _plain.append(WhisperModel(str(resolve_model(model, MODELS_DIR).path), device="cpu", compute_type="int8"))
    whisper: Any = _plain[0]
    clip = np.frombuffer(pcm16(AUDIO_DIR / "jfk.flac", 16_000), dtype="<i2")[: 3 * 16_000].astype(np.float32) / 32768
    took = []
    for _ in range(3):
        started = time.monotonic()
        segments, _ = whisper.transcribe(clip, language="en")
        list(segments)
        took.append(time.monotonic() - started)
    return median(took)


def render(model: str, info: dict[str, str], result: dict[str, object], sessions: int, took_s: float) -> str:
    one: Run = result["one"]  # type: ignore[assignment]
    many: list[Run] = result["many"]  # type: ignore[assignment]
    packed: list[Run] = result["packed"]  # type: ignore[assignment]
    reference, file_text = str(result["reference"]), str(result["file_text"])
    live_wer = wer(reference, " ".join(one.texts)) * 100
    file_wer = wer(reference, file_text) * 100
    sizes: list[int] = result["batch_sizes"]  # type: ignore[assignment]
    rows = [
        _row("1 speaker", [one], TARGET_ONE_S),
        _row(f"{sessions} speakers at once", many, TARGET_MANY_S),
        _row(f"{sessions} at once, PACK_ACROSS_CONVERSATIONS", packed, TARGET_MANY_S),
    ]
    return f"""## Live: a speaker into `/v1/realtime` at real-time pace (`{model}`, CPU)

`bench/bench_live.py`: the official `openai` client's realtime connection, server VAD with OpenAI's
default {SILENCE_MS} ms of silence, {', '.join(PIECES)} resampled to 24 kHz and sent in 100 ms pieces as a
microphone delivers them, {float(result['seconds']):.0f} s of audio per speaker. "From speech end" counts from
the last speech sample sent to the `completed` event, so it includes the {SILENCE_MS} ms the VAD must wait
to know the speaker has stopped; "from speech_stopped" is what the server adds, split into the wait for the
runner (queued behind other utterances: the runner's on_batch hook says when each began) and the
transcription itself. The target is on the 95th percentile from speech end; the max is shown beside it.

{table(["Speakers", "Utterances", "Without transcript", "From speech end: median (s)", "p95 (s)", "max (s)",
        "From speech_stopped: median (s)", "of which queued: median (s)", "transcribing: median (s)",
        "Target (p95)", "Result"], rows)}

For scale: plain faster-whisper (defaults, language given) takes {_seconds(result["plain_clip_s"])} s for a 3 s
utterance in this run (median of 3, before the speakers / after them).

Batching strategy measured on this device: {result["strategy"]} (core/engines/batching.py). Batches the
runner composed: {len(sizes)}, of {max(sizes) if sizes else 0} utterance(s) at most. Utterances of different
conversations never share a packed window; with the trimmed or batched strategy each keeps its own
decoding sequence, so those of different speakers may share a call, and PACK_ACROSS_CONVERSATIONS changes
nothing (its row then measures the same configuration again).

Word error rate against the references: live (one speaker) {live_wer:.1f} %, the same audio transcribed as
one file {file_wer:.1f} % — {abs(live_wer - file_wer):.1f} points apart (target ≤ {TARGET_WER_POINTS:g}:
{mark(abs(live_wer - file_wer) <= TARGET_WER_POINTS)}).

Took {took_s:.0f} s.

{format_machine(info)}
"""


def _seconds(values: object) -> str:
    return " / ".join(f"{v:.2f}" for v in values)  # type: ignore[attr-defined]


def _row(name: str, runs: list[Run], target: float) -> tuple[object, ...]:
    from_end = [x for run in runs for x in run.from_speech_end]
    from_stop = [x for run in runs for x in run.from_stopped]
    waited = [x for run in runs for x in run.waited]
    working = [x for run in runs for stop, wait in zip(run.from_stopped, run.waited, strict=False)
               for x in (stop - wait,)]
    failed = sum(len(run.failed) for run in runs)
    if not from_end:
        return (name, 0, failed, "–", "–", "–", "–", "–", "–", f"≤ {target}", mark(False))
    p95 = percentile(from_end, 95)
    return (name, len(from_end), failed, f"{median(from_end):.2f}", f"{p95:.2f}", f"{max(from_end):.2f}",
            f"{median(from_stop):.2f}", f"{median(waited):.2f}" if waited else "–",
            f"{median(working):.2f}" if working else "–", f"≤ {target}", mark(p95 <= target and not failed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 speakers, nothing written: checks the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.sessions, args.no_write = 1, 2, True
    require_audio()
    info = machine_info()
    started = time.monotonic()
    result = asyncio.run(measure(args.model, args.rounds, args.sessions))
    print("live:", " | ".join(result["one"].texts), file=sys.stderr)  # type: ignore[attr-defined]
    print("file:", result["file_text"], file=sys.stderr)
    for run in [result["one"], *result["many"]]:  # type: ignore[list-item]
        for why in run.failed:
            print("no transcript:", why, file=sys.stderr)
    markdown = render(args.model, info, result, args.sessions, time.monotonic() - started)
    print(markdown)
    if not args.no_write:
        write_section(f"live-{args.model}", markdown)
        print(f"wrote the live-{args.model} section of docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()
