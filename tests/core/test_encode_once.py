"""faster-whisper encodes a long note's first window twice when it detects the language; the engine hands
the second call the first one's output (core/engines/faster_whisper.py EncodeOnce)."""

from __future__ import annotations

import threading

import numpy as np

from chatscribe.core.engines.faster_whisper import EncodeOnce, FasterWhisperEngine


def test_the_same_features_twice_in_a_row_are_encoded_once_and_anything_else_again() -> None:
    calls: list[np.ndarray] = []

    def encode(features: np.ndarray) -> object:
        calls.append(features)
        return object()

    once = EncodeOnce(encode)
    window = np.random.default_rng(0).random((80, 3000), dtype=np.float32)
    with once.remembering():
        first = once(window)
        assert once(window.copy()) is first  # detect_language's pass, then the decoding pass
        assert len(calls) == 1
        assert once(window) is not first  # only the call right after: a third pass encodes again
        shifted = window.copy()
        shifted[0, 0] += 1.0
        assert once(shifted) is not first
        assert len(calls) == 3


def test_outside_the_engines_faster_whisper_call_every_pass_encodes() -> None:
    """The batcher times the same window twice to choose its strategy: a remembered output would time 0 ms."""
    calls: list[np.ndarray] = []
    once = EncodeOnce(lambda features: calls.append(features) or object())
    window = np.zeros((80, 3000), dtype=np.float32)
    once(window)
    once(window)
    assert len(calls) == 2


def test_each_worker_thread_has_its_own_last_window() -> None:
    calls: list[int] = []
    once = EncodeOnce(lambda features: calls.append(1) or object())
    window = np.zeros((80, 3000), dtype=np.float32)

    def another_note() -> None:
        with once.remembering():
            once(window)

    with once.remembering():
        once(window)
        other = threading.Thread(target=another_note)  # another note on another thread
        other.start()
        other.join()
    assert len(calls) == 2


def test_the_engine_encodes_through_it(tiny_engine: FasterWhisperEngine) -> None:
    assert isinstance(tiny_engine._model.encode, EncodeOnce)
