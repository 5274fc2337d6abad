"""Speakers by voice on one channel: who speaks when, as turns of labelled time.

The speech the VAD hears (Silero, as the quality pass uses) is laid end to end, its volume raised as the
encoder expects, and cut into overlapping 1.6 s windows every WINDOW_HOP_S; each window becomes a voice
vector (encoder.py). The vectors are clustered (clustering.py); every 10 ms of speech takes the voice of the
windows covering it (a vote), which also places a change of voice inside a VAD segment; turns shorter than
MIN_TURN_S join their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..media import SAMPLE_RATE
from .clustering import DISTANCE_THRESHOLD, agglomerate, centroids, refine
from .encoder import EMBEDDING_SIZE, HOP, PARTIAL_FRAMES, VoiceEncoder, mel_spectrogram, normalize_volume

WINDOW_HOP_S = 0.4
MAX_WINDOWS = 900
"""Beyond this (about 6 minutes of speech) consecutive windows are averaged in groups: the clustering's
cost grows with the square of its inputs, and a group of 2-3 windows still spans one turn."""
MIN_TURN_S = 1.0
MIN_CLUSTER_SHARE = 0.04
"""A cluster holding less of the speech than this is absorbed by its nearest neighbour: a cough, a laugh,
a window straddling two voices, not a speaker (unless the request's min_speakers needs it)."""
MIN_CLUSTER_S = 2.0
MIN_REGION_S = 1.0
"""A stretch of speech shorter than this between pauses is too short for a voice vector of its own."""
SNAP_S = 0.8
"""A change of voice this close to a pause moves to the pause: people take turns at pauses, and the 1.6 s
windows blur where a turn starts by about half their length."""


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: int
    """0, 1, … in order of first turn."""


@dataclass(frozen=True, slots=True)
class Voices:
    turns: tuple[Turn, ...]
    centroids: np.ndarray
    """Row k: speaker k's mean voice vector (to match known speakers)."""

    @property
    def count(self) -> int:
        """How many voices: the centroids' rows, or the turns' speakers from a finder that gives no vectors."""
        return len(self.centroids) or len({t.speaker for t in self.turns})


def speech_spans(samples: np.ndarray) -> list[tuple[int, int]]:
    """Sample ranges of speech by Silero VAD (the one faster-whisper ships)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) == 0:
        return []
    spans = get_speech_timestamps(samples, VadOptions(min_silence_duration_ms=250, speech_pad_ms=60))
    return [(int(s["start"]), int(s["end"])) for s in spans]


def find_voices(samples: np.ndarray, encoder: VoiceEncoder, *, least: int = 1, most: int | None = None,
                threshold: float = DISTANCE_THRESHOLD) -> Voices:
    """Who speaks when in mono `samples` (16 kHz); a recording without speech has no turns."""
    spans = speech_spans(samples)
    if not spans:
        return Voices((), np.zeros((0, EMBEDDING_SIZE), dtype=np.float32))
    speech = np.concatenate([samples[a:b] for a, b in spans])
    where = np.concatenate([np.arange(a, b, HOP) for a, b in spans])  # each speech frame's sample in the recording
    mel = mel_spectrogram(normalize_volume(speech))[: len(where)]
    where = where[: len(mel)]
    frames = len(mel)
    hop = int(round(WINDOW_HOP_S * SAMPLE_RATE / HOP))
    ranges = _window_ranges(_regions(spans), hop)
    widened = _widened(ranges, frames)
    # A few hundred windows at a time: an hour's windows stacked at once would take about 230 MB.
    vectors = np.concatenate([encoder.embed_mels(np.stack([_window(mel, a, b) for a, b in widened[i : i + 256]]))
                              for i in range(0, len(widened), 256)])
    group = max(1, -(-len(vectors) // MAX_WINDOWS))
    if group > 1:
        vectors = _grouped(vectors, group)
        ranges = [(ranges[i][0], ranges[min(len(ranges), i + group) - 1][1]) for i in range(0, len(ranges), group)]
    labels = refine(vectors, agglomerate(vectors, threshold=threshold, least=least, most=most))
    labels = _absorb_small(vectors, labels, ranges, frames, least)
    frame_labels = _vote(labels, ranges, frames)
    frame_labels = _smooth(frame_labels, int(MIN_TURN_S * SAMPLE_RATE / HOP))
    frame_labels = _snap(frame_labels, _junctions(spans), int(SNAP_S * SAMPLE_RATE / HOP))
    labels_in_order, turns = _turns(frame_labels, where)
    centre = centroids(vectors, labels)
    return Voices(turns, centre[labels_in_order] if len(labels_in_order) else centre[:0])


def _regions(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The VAD's spans as frame ranges of the speech laid end to end, a span shorter than MIN_REGION_S joined to
    its neighbour: windows stay inside a region, so a window rarely holds two people taking turns at a pause."""
    least = int(MIN_REGION_S * SAMPLE_RATE / HOP)
    regions: list[list[int]] = []
    at = 0
    for a, b in spans:
        length = len(range(a, b, HOP))
        if regions and (length < least or regions[-1][1] - regions[-1][0] < least):
            regions[-1][1] = at + length
        else:
            regions.append([at, at + length])
        at += length
    return [(a, b) for a, b in regions]


def _window_ranges(regions: list[tuple[int, int]], hop: int) -> list[tuple[int, int]]:
    """Frame ranges of the windows: every `hop` frames inside each region, the last one flush with its end; a
    region shorter than a window is one window (widened for its vector: _widened)."""
    ranges: list[tuple[int, int]] = []
    for a, b in regions:
        if b - a <= PARTIAL_FRAMES:
            ranges.append((a, b))
            continue
        starts = list(range(a, b - PARTIAL_FRAMES + 1, hop))
        if starts[-1] + PARTIAL_FRAMES < b:
            starts.append(b - PARTIAL_FRAMES)
        ranges += [(start, start + PARTIAL_FRAMES) for start in starts]
    return ranges


def _widened(ranges: list[tuple[int, int]], frames: int) -> list[tuple[int, int]]:
    """Ranges shorter than a window widened to one, centred, into the speech around them: a window mostly of
    zero padding gives a vector unlike the same voice's full windows (measured: it made a cluster of its own).
    The frames a window votes for stay its own range."""
    out = []
    for a, b in ranges:
        if b - a >= PARTIAL_FRAMES or frames <= PARTIAL_FRAMES:
            out.append((a, b) if frames > PARTIAL_FRAMES else (0, frames))
            continue
        start = min(max(0, (a + b) // 2 - PARTIAL_FRAMES // 2), frames - PARTIAL_FRAMES)
        out.append((start, start + PARTIAL_FRAMES))
    return out


def _window(mel: np.ndarray, start: int, end: int) -> np.ndarray:
    window = mel[start:end][:PARTIAL_FRAMES]
    if len(window) < PARTIAL_FRAMES:
        window = np.pad(window, ((0, PARTIAL_FRAMES - len(window)), (0, 0)))
    return window


def _grouped(vectors: np.ndarray, group: int) -> np.ndarray:
    count = -(-len(vectors) // group)
    means = np.stack([vectors[i * group : (i + 1) * group].mean(axis=0) for i in range(count)])
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-8)


def _absorb_small(vectors: np.ndarray, labels: np.ndarray, ranges: list[tuple[int, int]], frames: int,
                  least: int) -> np.ndarray:
    """Clusters holding too little of the speech join the cluster nearest them, while more than `least` remain."""
    while True:
        count = int(labels.max()) + 1
        if count <= max(1, least):
            return labels
        seconds = np.bincount(_vote(labels, ranges, frames), minlength=count) * HOP / SAMPLE_RATE
        small = int(np.argmin(seconds))
        if seconds[small] >= max(MIN_CLUSTER_S, MIN_CLUSTER_SHARE * frames * HOP / SAMPLE_RATE):
            return labels
        centre = centroids(vectors, labels)
        similarity = centre @ centre[small]
        similarity[small] = -np.inf
        merged = np.where(labels == small, int(np.argmax(similarity)), labels)
        labels = _first_seen(merged)


def _first_seen(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(x), len(order)) for x in labels], dtype=int)


def _vote(labels: np.ndarray, ranges: list[tuple[int, int]], frames: int) -> np.ndarray:
    """Per speech frame, the cluster of the windows covering it, nearer window centres counting more."""
    count = int(labels.max()) + 1
    votes = np.zeros((frames, count))
    for label, (start, end) in zip(labels, ranges, strict=True):
        end = min(frames, end)
        votes[start:end, label] += np.hanning(end - start + 2)[1:-1]
    return np.argmax(votes, axis=1)


def _smooth(frame_labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Runs shorter than `min_frames` take the label of the longer neighbouring run."""
    labels = frame_labels.copy()
    for _ in range(3):
        runs = _runs(labels)
        if len(runs) <= 1:
            break
        changed = False
        for index, (start, end, _label) in enumerate(runs):
            if end - start >= min_frames:
                continue
            before = runs[index - 1] if index > 0 else None
            after = runs[index + 1] if index + 1 < len(runs) else None
            neighbour = max((r for r in (before, after) if r is not None), key=lambda r: r[1] - r[0])
            labels[start:end] = neighbour[2]
            changed = True
        if not changed:
            break
    return labels


def _junctions(spans: list[tuple[int, int]]) -> np.ndarray:
    """Where, in the speech laid end to end (frames), one VAD span ends and the next begins: the pauses."""
    lengths = np.array([len(range(a, b, HOP)) for a, b in spans])
    return np.cumsum(lengths)[:-1]


def _snap(labels: np.ndarray, junctions: np.ndarray, reach: int) -> np.ndarray:
    """Each change of label within `reach` frames of a pause moved onto it."""
    if not len(junctions):
        return labels
    out = labels.copy()
    for start, _end, label in _runs(labels)[1:]:
        nearest = int(junctions[np.argmin(np.abs(junctions - start))])
        if nearest != start and abs(nearest - start) <= reach:
            if nearest < start:
                out[nearest:start] = label  # the new voice started at the pause
            else:
                out[start:nearest] = out[start - 1]  # the old voice went on to the pause
    return out


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    if not len(labels):
        return []
    edges = np.flatnonzero(np.diff(labels)) + 1
    bounds = [0, *edges.tolist(), len(labels)]
    return [(bounds[i], bounds[i + 1], int(labels[bounds[i]])) for i in range(len(bounds) - 1)]


def _turns(frame_labels: np.ndarray, where: np.ndarray) -> tuple[list[int], tuple[Turn, ...]]:
    """Turns in recording time, speakers renumbered by first turn; a pause inside one voice's speech is
    not cut (the turn spans it), a new voice starts a new turn."""
    order: dict[int, int] = {}
    turns: list[Turn] = []
    for start, end, label in _runs(frame_labels):
        speaker = order.setdefault(label, len(order))
        begin_s = float(where[start]) / SAMPLE_RATE
        end_s = float(where[end - 1] + HOP) / SAMPLE_RATE
        if turns and turns[-1].speaker == speaker:
            turns[-1] = Turn(turns[-1].start, end_s, speaker)
        else:
            turns.append(Turn(begin_s, end_s, speaker))
    ordered = sorted(order, key=order.__getitem__)
    return ordered, tuple(turns)
