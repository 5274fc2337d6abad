"""faster-whisper encodes a long note's first window twice when it detects the language; the engine hands
the second call the first one's output (core/engines/faster_whisper.py EncodeOnce)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from chatscribe.core.engines.faster_whisper import EncodeOnce, FasterWhisperEngine
from chatscribe.core.media import decode_audio
from chatscribe.core.options import TranscribeOptions


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
    theirs: list[object] = []

    def another_note() -> None:
        with once.remembering():
            theirs.append(once(window))

    with once.remembering():
        mine = once(window)
        other = threading.Thread(target=another_note)  # another note, the same window, on another thread
        other.start()
        other.join()
        assert theirs[0] is not mine, "another thread's note was handed this thread's output"
        assert once(window) is mine, "the other thread's note ended this thread's memory"
    assert len(calls) == 2


def test_a_long_note_of_undeclared_language_encodes_its_first_window_once(
    base_engine: FasterWhisperEngine, audio: Callable[[str], bytes],
) -> None:
    """multilingual.mp3 is a minute: faster-whisper's language pass and the decoding of its first window
    need the same full window encoded (4 passes without the memory, 3 with it). A note shorter than a
    window is padded differently for the two passes, so only long notes gain."""
    samples = decode_audio(audio("multilingual.mp3"), max_duration_s=60).samples
    once = base_engine._model.encode
    assert isinstance(once, EncodeOnce)
    inner, passes = once._encode, []

    def counted(features: np.ndarray) -> object:
        passes.append(features.copy())
        return inner(features)

    once._encode = counted
    try:
        transcript = base_engine.transcribe_plain(samples, TranscribeOptions())
    finally:
        once._encode = inner
    assert transcript.language == "en"
    assert "permission" in transcript.text.lower()
    assert passes, "nothing went through the engine's encoder"
    again = [k for k in range(1, len(passes)) if np.array_equal(passes[k - 1], passes[k])]
    assert not again, f"pass {again[0]} encoded the same window as the pass before it"
