"""Live text in a chat: how soon a long voice note's status shows its first words, and that the answer is
the same as without live text.

    python -m bench.bench_chat_live [--model base] [--minutes 3.5] [--no-write]

A 3.5-minute voice note (OGG/Opus, as Telegram and Discord deliver them) is built from the shared English
speech (jfk.flac, hotwords.mp3, the English half of multilingual.mp3, stereo_diarization.wav) with short
pauses, and sent through `TranscriptionService.submit()` as a chat's note, to the one delivery mechanism
(core/delivery's Courier) with a sender that records what the chat would show, at Telegram's limits (one
status edit per 3 s, 4096 UTF-16 units) and with Telegram's renderer. It measures the seconds from the
start of the note's transcription (the runner's first "transcribing" report) to the first status holding
transcript words, and how often the status showed new words; then the same audio transcribed by a second
service without anyone listening to its segments (no live text, its own cache) must give the same answer,
message for message. The model is warmed up first, as in a bot that has answered a note already.
Writes the `chat-live-MODEL` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from bench.profile_steps import StepProfile
from bench.report import AUDIO_DIR, MODELS_DIR, format_machine, machine_info, mark, require_audio, write_section
from chatscribe.adapters import telegram as adapter
from chatscribe.core import ConversationSettings, utf16_units
from chatscribe.core.config import Settings
from chatscribe.core.delivery import Courier, Limits, Place
from chatscribe.core.delivery.courier import LIVE_SEPARATOR
from chatscribe.core.engines.faster_whisper import FasterWhisperEngine
from chatscribe.core.engines.models import resolve_model
from chatscribe.core.errors import ChatscribeError
from chatscribe.core.jobs.journal import Job, ProgressUpdate
from chatscribe.core.media import Fetch, MediaRequest, decode_audio
from chatscribe.core.options import TranscribeOptions
from chatscribe.core.quality import speech_mask
from chatscribe.core.service import TranscriptionService
from chatscribe.core.transcript import Transcript
from tests.audio_tools import pcm16

RATE = 16_000
PIECES = (("jfk.flac", None), ("hotwords.mp3", None), ("multilingual.mp3", 0.5), ("stereo_diarization.wav", None))
"""(file, share of it to keep): multilingual.mp3's first half is English."""
PAUSE_S = 0.8
TARGET_FIRST_WORDS_S = 5.0
BEFORE_FIRST_WORDS = (
    # (label, module, object or "", attribute): what the note's worker thread does before its first words
    ("decode media (PyAV)", "chatscribe.core.jobs.runner", "", "decode_audio"),
    ("quality pass: speech mask (Silero)", "chatscribe.core.jobs.runner", "", "speech_mask"),
    ("faster-whisper's VAD filter (Silero)", "faster_whisper.transcribe", "", "get_speech_timestamps"),
    ("log-Mel features", "faster_whisper.feature_extractor", "FeatureExtractor", "__call__"),
    ("encoder (30 s windows)", "faster_whisper.transcribe", "WhisperModel", "encode"),
)
LIMITS = Limits(message_units=adapter.MESSAGE_LIMIT, measure=utf16_units, edit_interval_s=3.0)
"""Telegram's: the status is edited at most every 3 s per chat."""


def voice_note(minutes: float) -> bytes:
    """`minutes` of real English speech with short pauses, as an OGG/Opus voice note."""
    pause = np.zeros(int(PAUSE_S * RATE), dtype=np.int16)
    pieces = []
    for name, share in PIECES:
        speech = np.frombuffer(pcm16(AUDIO_DIR / name, RATE), dtype="<i2")
        pieces.append(speech[: int(len(speech) * share)] if share else speech)
    parts: list[np.ndarray] = []
    total, want = 0, int(minutes * 60 * RATE)
    while total < want:
        for piece in pieces:
            parts += [piece, pause]
            total += len(piece) + len(pause)
    samples = np.concatenate(parts)[:want]
    return _opus(samples)


def _opus(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "mono"  # type: ignore[union-attr]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.rate = RATE
        for piece in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(piece):  # type: ignore[union-attr]
                container.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            container.mux(packet)
    return out.getvalue()


@dataclass
class ChatRecord:
    """What the chat showed, with the time each status text went out."""

    statuses: list[tuple[float, str]] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    transcribing_at: float | None = None
    profile: StepProfile | None = None
    before_first_words: dict[str, float] = field(default_factory=dict)
    """Seconds each finished step of BEFORE_FIRST_WORDS had taken when the first words were shown."""

    def shown(self, text: str) -> None:
        self.statuses.append((time.monotonic(), text))
        if LIVE_SEPARATOR in text and not self.before_first_words and self.profile is not None:
            self.before_first_words = dict(self.profile.seconds)


class RecordingSender:
    """A chat that keeps what it was shown; Telegram's limits and renderer."""

    limits = LIMITS

    def __init__(self, record: ChatRecord) -> None:
        self.record = record

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        raise AssertionError("nothing is resumed in this benchmark")

    def place(self, job: Job) -> Place:
        return Place(job.request.chat_id)

    async def render(self, job: Job, outcome: Transcript | ChatscribeError) -> Sequence[str]:
        return _render(outcome)

    async def send(self, job: Job, part: str) -> None:
        self.record.answer.append(part)

    async def post_status(self, job: Job, text: str) -> str:
        self.record.shown(text)
        return "status"

    async def edit_status(self, job: Job, status_id: str, text: str) -> None:
        self.record.shown(text)

    async def replace_status(self, job: Job, status_id: str, part: str) -> bool:
        self.record.answer.append(part)
        return True

    async def already_sent(self, job: Job, part: str) -> bool:
        return False

    async def find_status(self, job: Job) -> str | None:
        return None

    async def typing(self, job: Job) -> None:
        return None


class Watched(Courier[str]):
    """The courier, noting when the runner began transcribing the note (its first "transcribing" report)."""

    def __init__(self, sender: RecordingSender, service: TranscriptionService) -> None:
        super().__init__(sender, note=service.note)
        self.record = sender.record

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        if update.stage == "transcribing" and self.record.transcribing_at is None:
            self.record.transcribing_at = time.monotonic()
        await super().progress(job, update)


def _render(outcome: Transcript | ChatscribeError) -> list[str]:
    if isinstance(outcome, ChatscribeError):
        return [outcome.user_message]
    parts = adapter.render_transcript(outcome, ConversationSettings(), max_parts=8, file_stem="note")
    return [getattr(part, "text", None) or f"<file {getattr(part, 'file_name', '?')}>" for part in parts]


def _fetcher(data: bytes) -> Fetch:
    async def fetch(max_bytes: int) -> bytes:
        return data

    return fetch


def _request(data: bytes, chat: str) -> MediaRequest:
    return MediaRequest(platform="bench", chat_id=chat, user_id=chat, fetch=_fetcher(data), kind="voice",
                        mime_type="audio/ogg", size_bytes=len(data), file_name=None)


async def measure(model: str, minutes: float) -> dict[str, object]:
    note = voice_note(minutes)
    engine = FasterWhisperEngine(resolve_model(model, MODELS_DIR), device="cpu")
    # Warm-up, as a bot that has answered a note already: the first model call and the VAD load.
    warm = decode_audio(voice_note(0.2), max_duration_s=60)
    engine.transcribe(warm.samples, TranscribeOptions())
    speech_mask(warm.samples)
    record = ChatRecord()
    with tempfile.TemporaryDirectory() as live_dir, tempfile.TemporaryDirectory() as plain_dir:
        settings = Settings(_env_file=None, data_dir=Path(live_dir), model=model, device="cpu",  # type: ignore[call-arg]
                            user_rate="")
        async with TranscriptionService(settings=settings, engine=engine) as service:
            service.register("bench", Watched(RecordingSender(record), service))
            record.profile = StepProfile(BEFORE_FIRST_WORDS)
            started = time.monotonic()
            try:
                await service.submit(_request(note, "live"))
                await service.wait_idle()
            finally:
                record.profile.close()
            live_s = time.monotonic() - started
        plain_settings = Settings(_env_file=None, data_dir=Path(plain_dir), model=model, device="cpu",  # type: ignore[call-arg]
                                  user_rate="")
        async with TranscriptionService(settings=plain_settings, engine=engine) as plain:
            started = time.monotonic()
            transcript = await plain.transcribe(_request(note, "plain"))  # nobody listens to its segments
            plain_s = time.monotonic() - started
    return {"record": record, "plain": _render(transcript), "live_s": live_s, "plain_s": plain_s,
            "seconds": transcript.duration_s, "faster_whisper_first_s": _plain_first_segment_s(model, note)}


def _plain_first_segment_s(model: str, note: bytes) -> float:
    """Plain faster-whisper (its defaults) on the same note: seconds from the call to its first segment,
    the file's decoding included, for a sense of what this machine allows in this run."""
    from faster_whisper import WhisperModel
    from faster_whisper import decode_audio as fw_decode

    whisper = WhisperModel(str(resolve_model(model, MODELS_DIR).path), device="cpu", compute_type="int8")
    started = time.monotonic()
    segments, _ = whisper.transcribe(fw_decode(io.BytesIO(note)))
    next(iter(segments))
    return time.monotonic() - started


def render(model: str, info: dict[str, str], result: dict[str, object], took_s: float) -> str:
    record: ChatRecord = result["record"]  # type: ignore[assignment]
    plain: list[str] = result["plain"]  # type: ignore[assignment]
    begun = record.transcribing_at
    with_words = [(at, text) for at, text in record.statuses if LIVE_SEPARATOR in text]
    first = (with_words[0][0] - begun) if with_words and begun is not None else None
    same = record.answer == plain
    shown = [text.split(LIVE_SEPARATOR, 1)[1] for _, text in with_words]
    growing = sum(1 for a, b in zip(shown, shown[1:], strict=False) if b != a)
    gaps = [b[0] - a[0] for a, b in zip(record.statuses, record.statuses[1:], strict=False)]
    first_text = "–" if first is None else f"{first:.1f} s"
    steps = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in record.before_first_words.items())
    counted = sum(record.before_first_words.values())
    rest = "" if first is None else f"; the rest ({first - counted:.1f} s) went to the first window's decoding, "\
        "the language detection and the wait for the next allowed status edit"
    first_mark = mark(first is not None and first <= TARGET_FIRST_WORDS_S)
    same_text = f"{'same' if same else 'differs'} ({len(record.answer)} message(s))"
    return f"""## Chat: a long voice note's words in its status (`{model}`, CPU)

`bench/bench_chat_live.py`: a {float(result['seconds']) / 60:.1f}-minute OGG/Opus voice note of the shared English
speech, through `TranscriptionService.submit()` to the courier (core/delivery) with a sender recording
what the chat shows, at Telegram's limits (one status edit per 3 s). The same audio transcribed by a
second service without live text (its own cache) gives the reference answer.

| Measure | Target | Measured | |
|---|---|---|---|
| start of transcription → first words in the status | ≤ {TARGET_FIRST_WORDS_S:g} s | {first_text} | {first_mark} |
| the answer, message for message, equals the one without live text | same | {same_text} | {mark(same)} |

Before the first words (steps finished by then, on the note's worker thread): {steps or "–"}{rest}.

Statuses shown: {len(record.statuses)}, {len(with_words)} with words, the words growing {growing} times;
the closest two status edits {min(gaps) if gaps else float('nan'):.1f} s apart (Telegram's rate: 3 s). The
whole note took {float(result['live_s']):.0f} s with live text and {float(result['plain_s']):.0f} s without.
For scale, in the same run: plain faster-whisper (defaults) yields its first segment of this note
{float(result['faster_whisper_first_s']):.1f} s after it is called.

Took {took_s:.0f} s.

{format_machine(info)}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--minutes", type=float, default=3.5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a 40 s note, nothing written: checks the script")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.no_write = 40 / 60, True
    require_audio()
    info = machine_info()
    started = time.monotonic()
    result = asyncio.run(measure(args.model, args.minutes))
    markdown = render(args.model, info, result, time.monotonic() - started)
    print(markdown)
    if not args.no_write:
        write_section(f"chat-live-{args.model}", markdown)
        print(f"wrote the chat-live-{args.model} section of docs/benchmarks.md", file=sys.stderr)


if __name__ == "__main__":
    main()
