"""The burst workload: 40 distinct voice notes of 2–60 s from 8 chats, cut from the shared speech.

Fixed by a seed so every run sends the same notes in the same order at the same moments. Each note
is a different slice of real English speech from ../shared/audio (jfk.flac, the English half of
multilingual.mp3, hotwords.mp3, stereo_diarization.wav), encoded as OGG/Opus like a Telegram or
Discord voice message; no two notes have the same bytes, so the cache answers none of them.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from chatscribe.core.media import SAMPLE_RATE, decode_audio

SHORT_S = 10.0
"""Notes shorter than this are the ones the target is about."""
SOURCES = (("jfk.flac", None), ("multilingual.mp3", 29.0), ("hotwords.mp3", None), ("stereo_diarization.wav", None))
"""(file, seconds to keep): multilingual.mp3 turns German at about 0:30."""


@dataclass(frozen=True, slots=True)
class Note:
    index: int
    chat_id: str
    arrival_s: float
    """Seconds after the burst starts at which the note is sent."""
    duration_s: float
    data: bytes

    @property
    def short(self) -> bool:
        return self.duration_s < SHORT_S


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    notes: tuple[Note, ...]


def scenarios(audio_dir: Path, *, seed: int = 7, window_s: float = 10.0) -> tuple[Scenario, ...]:
    """Both bursts share the 40 notes' lengths; they differ in who sends what, and when."""
    rng = random.Random(seed)
    pool = _speech_pool(audio_dir)
    # 24 short, 10 medium, 6 long: most voice notes in a chat are short.
    lengths = ([rng.uniform(2, SHORT_S) for _ in range(24)] + [rng.uniform(SHORT_S, 30) for _ in range(10)]
               + [rng.uniform(30, 60) for _ in range(6)])
    clips = [_clip(pool, rng.randrange(len(pool)), length) for length in lengths]
    chats = [f"chat{n}" for n in range(1, 9)]

    # One person forwards their long recordings (6 long + 4 medium) at the start; seven chats send the rest.
    forwarded = list(range(30, 40))  # the last 4 medium and the 6 long
    rest = [i for i in range(40) if i not in forwarded]
    rng.shuffle(rest)
    forwarder = [(i, chats[0], rng.uniform(0, 2)) for i in forwarded]
    others = [(i, rng.choice(chats[1:]), rng.uniform(0, window_s)) for i in rest]
    forwarding = _notes(forwarder + others, clips, lengths)

    # Everyone sends a mix: every note from a random chat at a random moment.
    mixed = _notes([(i, rng.choice(chats), rng.uniform(0, window_s)) for i in range(40)], clips, lengths)
    return (
        Scenario("forwarding", "chat1 forwards 10 long recordings (6 of 30–60 s, 4 of 10–30 s) within 2 s; "
                 f"chats 2–8 send the other 30 notes (24 under {SHORT_S:.0f} s) at random moments in "
                 f"{window_s:.0f} s", forwarding),
        Scenario("mixed", f"all 40 notes from random chats of the 8, at random moments in {window_s:.0f} s", mixed),
    )


def _notes(plan: list[tuple[int, str, float]], clips: list[bytes], lengths: list[float]) -> tuple[Note, ...]:
    ordered = sorted(plan, key=lambda item: item[2])
    notes = tuple(Note(n, chat, arrival, lengths[i], clips[i]) for n, (i, chat, arrival) in enumerate(ordered))
    assert len({note.data for note in notes}) == len(notes), "two notes with the same bytes would hit the cache"
    return notes


def _speech_pool(audio_dir: Path) -> np.ndarray:
    parts = []
    for name, keep_s in SOURCES:
        samples = decode_audio((audio_dir / name).read_bytes(), max_duration_s=3600).samples
        parts.append(samples[: int(keep_s * SAMPLE_RATE)] if keep_s else samples)
    return np.concatenate(parts)


def _clip(pool: np.ndarray, start: int, length_s: float) -> bytes:
    """`length_s` of the pool from `start`, wrapping around, as an OGG/Opus voice note."""
    count = int(length_s * SAMPLE_RATE)
    samples = np.take(pool, np.arange(start, start + count), mode="wrap")
    return _opus(samples)


def _opus(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 24_000
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
