"""Turning who-speaks-when into the transcript: each word to the voice speaking at its time, segments split
where the voice changes, labels given in order of first turn ("A", "B", … or a known speaker's name)."""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence

import numpy as np

from ..transcript import Segment, Transcript, Word
from .voices import Turn


def letter(index: int) -> str:
    """"A".."Z", then "AA", "AB"… (never needed in practice; MAX_SPEAKERS is 20)."""
    letters = string.ascii_uppercase
    return letters[index] if index < 26 else letter(index // 26 - 1) + letters[index % 26]


def speaker_at(turns: Sequence[Turn], start: float, end: float) -> int | None:
    """The speaker of the turn overlapping [start, end] most; the nearest turn where none overlaps."""
    if not turns:
        return None
    best, best_overlap = None, 0.0
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > best_overlap:
            best, best_overlap = turn.speaker, overlap
    if best is not None:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def split_by_speaker(segments: Sequence[Segment], turns: Sequence[Turn]) -> list[tuple[Segment, int | None]]:
    """Each segment with its speaker; a segment whose words belong to several voices becomes one segment per
    run of words (a voice's run of a single word between two runs of another is taken as a timing slip)."""
    out: list[tuple[Segment, int | None]] = []
    for segment in segments:
        if not segment.words:
            out.append((segment, speaker_at(turns, segment.start, segment.end)))
            continue
        owners = [speaker_at(turns, w.start, w.end) for w in segment.words]
        for index in range(1, len(owners) - 1):
            if owners[index - 1] == owners[index + 1] != owners[index]:
                owners[index] = owners[index - 1]
        # One word alone at either end of a segment, under another voice than the rest, is a timing slip
        # (Whisper's first and last word times are its least precise; a turn's edge is blurred by the
        # 1.6 s windows): it stays with its segment.
        if len(owners) >= 3 and owners[0] != owners[1] == owners[2]:
            owners[0] = owners[1]
        if len(owners) >= 3 and owners[-1] != owners[-2] == owners[-3]:
            owners[-1] = owners[-2]
        runs: list[tuple[int | None, list[Word]]] = []
        for word, owner in zip(segment.words, owners, strict=True):
            if runs and runs[-1][0] == owner:
                runs[-1][1].append(word)
            else:
                runs.append((owner, [word]))
        if len(runs) == 1:
            out.append((segment, runs[0][0]))
            continue
        for position, (owner, words) in enumerate(runs):
            start = segment.start if position == 0 else words[0].start
            end = segment.end if position == len(runs) - 1 else words[-1].end
            piece = dataclasses.replace(segment, start=start, end=end, text="".join(w.text for w in words),
                                        words=tuple(words), tokens=())  # tokens no longer match the text
            out.append((piece, owner))
    return out


def labelled(transcript: Transcript, owned: Sequence[tuple[Segment, int | None]],
             names: Mapping[int, str] | None = None) -> Transcript:
    """The transcript with each spoken segment's label; with fewer than two speakers heard, the transcript
    as it was (no labels: one voice reads as today's output)."""
    names = names or {}
    spoken = [(s, owner) for s, owner in owned if s.text.strip() and owner is not None]
    order: dict[int, str] = {}
    letters = 0
    for _segment, owner in spoken:
        if owner not in order:
            if owner in names:
                order[owner] = names[owner]
            else:
                order[owner] = letter(letters)
                letters += 1
    if len(order) < 2:
        return transcript
    segments = tuple(dataclasses.replace(s, speaker=order[o] if o is not None else None) for s, o in owned)
    return dataclasses.replace(transcript, segments=segments, speakers=tuple(order.values()))


def name_known(centroids: np.ndarray, references: Sequence[tuple[str, np.ndarray]],
               threshold: float) -> dict[int, str]:
    """Speaker index -> a known speaker's name, each name to at most one speaker, best matches first."""
    pairs = sorted(((float(centroids[k] @ vector), k, name) for k in range(len(centroids))
                    for name, vector in references), reverse=True)
    named: dict[int, str] = {}
    used: set[str] = set()
    for similarity, k, name in pairs:
        if similarity < threshold:
            break
        if k not in named and name not in used:
            named[k] = name
            used.add(name)
    return named
