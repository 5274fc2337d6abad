"""Agglomerative clustering of voice vectors by cosine distance: how many voices, and which is whose.

Average linkage: two groups merge while the mean distance between their members is below a threshold, so
one voice's many windows gather first and different voices stay apart. The number of voices is where the
merging stops, unless the request fixes bounds (min/max speakers): then the cut falls inside them.
"""

from __future__ import annotations

import numpy as np

DISTANCE_THRESHOLD = 0.35
"""Cosine distance (1 - similarity) at which two groups of windows are taken for different voices. Resemblyzer's
windows of one voice lie mostly above 0.75 similarity to their group, different voices below 0.6 (measured
on the shared audio and espeak-ng voices: bench/bench_speakers.py)."""


def agglomerate(vectors: np.ndarray, *, threshold: float = DISTANCE_THRESHOLD, least: int = 1,
                most: int | None = None) -> np.ndarray:
    """A cluster index per row of `vectors` (unit rows), 0.. in order of first appearance."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=int)
    most = n if most is None else max(1, min(most, n))
    least = max(1, min(least, most))
    distance = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0).astype(np.float64)
    np.fill_diagonal(distance, np.inf)
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    owner = np.arange(n)  # each row's current cluster (the index of the row that represents it)
    clusters = n
    while clusters > least:
        flat = int(np.argmin(distance))
        i, j = divmod(flat, n)
        if distance[i, j] > threshold and clusters <= most:
            break
        # Lance–Williams update for average linkage: the merged group's distance to k is the size-weighted mean.
        merged = (sizes[i] * distance[i] + sizes[j] * distance[j]) / (sizes[i] + sizes[j])
        distance[i], distance[:, i] = merged, merged
        distance[i, i] = np.inf
        distance[j], distance[:, j] = np.inf, np.inf
        sizes[i] += sizes[j]
        alive[j] = False
        owner[owner == j] = i
        clusters -= 1
    return _in_order(owner)


def _in_order(owner: np.ndarray) -> np.ndarray:
    labels = np.empty(len(owner), dtype=int)
    seen: dict[int, int] = {}
    for index, root in enumerate(owner):
        labels[index] = seen.setdefault(int(root), len(seen))
    return labels


def centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each cluster's mean vector, normalised; row k is cluster k."""
    count = int(labels.max()) + 1 if len(labels) else 0
    means = np.stack([vectors[labels == k].mean(axis=0) for k in range(count)]) if count else vectors[:0]
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-8)


def refine(vectors: np.ndarray, labels: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Each window to its nearest centroid, a few times (a window that merged early with the wrong group moves)."""
    for _ in range(rounds):
        if not len(labels):
            break
        nearest = np.argmax(vectors @ centroids(vectors, labels).T, axis=1)
        if np.array_equal(nearest, labels):
            break
        labels = _in_order(nearest)
    return labels
