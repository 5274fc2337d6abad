"""Mutated media for fuzzing: one seed, one file, the same bytes every time.

`mutant(seed, corpus)` picks a recording of the shared audio and one mutation from the seed alone, so a
seed printed by a failing run rebuilds the file that failed (with the same shared audio and PyAV):

    python -m bench.bench_fuzz --seeds 17 905 --keep DIR

Mutations: bit flips (spread over the file or packed into its header), truncations, header edits
(interesting values written over box, chunk and page sizes, sample rates and counts), container swaps
(the same packets remuxed into another accepted container, then flipped), splices of one file's head
onto another's body, duplicated or inserted ranges, and hostile wrappers (playlists, ID3 tags around
other formats).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import av

SOURCES = (
    "jfk.flac", "jfk.m4a", "jfk.webm", "jfk_video_note.mp4", "jfk_voice.ogg", "multilingual.mp3",
    "multilingual_voice.ogg", "hotwords.mp3", "stereo_diarization.wav", "silence_10s.ogg",
)
"""The recordings mutated, in a fixed order (the seed indexes into it)."""

SWAPS = {
    "opus": ("matroska", "webm", "ogg", "mp4", "caf"),
    "aac": ("adts", "matroska", "mp4", "mov", "caf"),
    "mp3": ("mp4", "matroska", "wav", "mp3", "caf"),
    "flac": ("ogg", "matroska", "mp4", "flac", "caf"),
    "pcm_s16le": ("caf", "matroska", "wav", "mov", "w64"),
    "vorbis": ("matroska", "ogg", "webm"),
}
"""Containers each codec is remuxed into (w64 lies outside the accepted list and must be refused)."""

_TAGS = (
    b"ftyp", b"moov", b"mvhd", b"trak", b"mdia", b"mdhd", b"minf", b"stbl", b"stsd", b"stts", b"stsc",
    b"stsz", b"stco", b"mdat", b"esds", b"dref", b"RIFF", b"WAVE", b"fmt ", b"data", b"OggS", b"OpusHead",
    b"OpusTags", b"fLaC", b"ID3", b"Xing", b"Info", b"LAME", b"\x1aE\xdf\xa3", b"\x18S\x80g", b"\x1fC\xb6u",
    b"\xa3", b"caff", b"desc", b"pakt",
)
"""Marks of the structures whose sizes and fields a header edit aims at."""

_INTERESTING = (
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x08", b"\x00\x00\xff\xff", b"\x01\x00\x00\x00",
    b"\xff\xff\xff\xff\xff\xff\xff\xff", b"\x00\x00\x00\x00\x00\x00\x00\x00",
)

_WRAPPERS = (
    b"ffconcat version 1.0\nfile 'local_secret.ogg'\n",
    b"#EXTM3U\n#EXTINF:11,\nlocal_secret.ogg\n#EXT-X-ENDLIST\n",
    b"ID3\x04\x00\x00\x00\x00\x00\x00",
    b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f",
    b"RIFF\xff\xff\xff\xffWAVE",
    b"OggS\x00\x02" + bytes(20),
    b"\x00\x00\x00\x18ftypisom",
)


@dataclass(frozen=True, slots=True)
class Mutant:
    seed: int
    source: str
    operation: str
    data: bytes

    @property
    def name(self) -> str:
        """A file name that says where it came from; the extension is the source's, never trusted."""
        return f"{self.seed:05d}-{self.operation}-{self.source}"


Corpus = Mapping[str, bytes]


def load_corpus(audio_dir: Path) -> dict[str, bytes]:
    return {name: (audio_dir / name).read_bytes() for name in SOURCES}


def mutant(seed: int, corpus: Corpus) -> Mutant:
    rng = random.Random(seed)
    source = SOURCES[rng.randrange(len(SOURCES))]
    name, operation = _OPERATIONS[rng.randrange(len(_OPERATIONS))]
    data = operation(rng, corpus[source], corpus)
    return Mutant(seed, source, name, data)


def _bit_flips(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 4, 16, 64, 256))):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _header_flips(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    out = bytearray(data)
    window = min(len(out), rng.choice((64, 512, 4096)))
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(window)] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncation(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    cut = rng.choice((rng.randrange(1, 64), rng.randrange(1, 4096), rng.randrange(1, len(data))))
    return data[:cut] if rng.random() < 0.85 else data[len(data) - cut :]


def _header_edit(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    out = bytearray(data)
    marks = [(tag, data.find(tag)) for tag in _TAGS if data.find(tag) >= 0]
    for _ in range(rng.randint(1, 3)):
        value = rng.choice(_INTERESTING)
        if marks:
            tag, at = rng.choice(marks)
            # MP4 and RIFF sizes sit just before or after the tag; fields follow within a few dozen bytes
            at += rng.choice((-4, len(tag), len(tag) + 4, rng.randrange(0, 48)))
        else:
            at = rng.randrange(min(len(out), 256))
        at = max(0, min(at, len(out) - 1))
        out[at : at + len(value)] = value
    return bytes(out[: len(data)]) if len(out) > len(data) else bytes(out)


def _container_swap(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    swapped = _remux(data, rng)
    return _bit_flips(rng, swapped, corpus) if rng.random() < 0.7 else swapped


def _splice(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    other = corpus[SOURCES[rng.randrange(len(SOURCES))]]
    head = rng.randrange(1, min(len(data), 8192))
    return data[:head] + other[rng.randrange(len(other) // 2) :]


def _ranges(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    at = rng.randrange(len(data))
    length = rng.randrange(1, min(65536, len(data) - at) + 1)
    if rng.random() < 0.5:
        return data[: at + length] + data[at : at + length] * rng.randint(1, 8) + data[at + length :]
    noise = rng.randbytes(length)
    return data[:at] + noise + data[at:] if rng.random() < 0.5 else data[:at] + noise + data[at + length :]


def _wrapper(rng: random.Random, data: bytes, corpus: Corpus) -> bytes:
    wrap = rng.choice(_WRAPPERS)
    return wrap + data if rng.random() < 0.7 else data[: rng.randrange(len(data))] + wrap + data


_OPERATIONS: tuple[tuple[str, Callable[[random.Random, bytes, Corpus], bytes]], ...] = (
    ("flip", _bit_flips),
    ("flip", _bit_flips),
    ("headflip", _header_flips),
    ("truncate", _truncation),
    ("truncate", _truncation),
    ("header", _header_edit),
    ("header", _header_edit),
    ("swap", _container_swap),
    ("swap", _container_swap),
    ("splice", _splice),
    ("ranges", _ranges),
    ("wrap", _wrapper),
)


def _remux(data: bytes, rng: random.Random) -> bytes:
    """The source's audio packets, unchanged, in another container; bit-exact so a seed gives one file."""
    with av.open(io.BytesIO(data)) as source:
        stream = source.streams.audio[0]
        target = rng.choice(SWAPS.get(stream.codec_context.name, ("matroska",)))
        packets = [packet for packet in source.demux(stream) if packet.size]
        try:
            return _remux_into(packets, stream, target)
        except (av.FFmpegError, ValueError):
            # A codec this container refuses: the packets in Matroska instead, which takes any.
            return _remux_into(packets, stream, "matroska")


def _remux_into(packets: list[av.Packet], stream: av.audio.AudioStream, target: str) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format=target, container_options={"fflags": "+bitexact"}) as sink:
        copy = sink.add_stream_from_template(stream)
        for packet in packets:
            packet.stream = copy
            sink.mux(packet)
    return out.getvalue()
