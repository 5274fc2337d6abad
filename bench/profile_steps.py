"""Where a burst's time goes: self time of each step of chatscribe's pipeline, for a benchmark's output.

`StepProfile` wraps the functions a note passes through (media decode, VAD, language detection, encoder,
decoder, word alignment, the quality and coverage passes, faster-whisper's own transcribe() for notes
that go alone) and adds up each one's own time: a step's time excludes the wrapped steps it calls (the
encoder pass inside language detection counts as language detection's, not twice). Per thread, so the
runner's worker thread and the event loop do not mix. The wrappers are removed by `close()`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

STEPS: tuple[tuple[str, str, str, str], ...] = (
    # (label, module, object or "", attribute)
    ("decode media (PyAV)", "chatscribe.core.jobs.runner", "", "decode_audio"),
    ("VAD before decoding (Silero)", "chatscribe.core.engines.decoding_steps", "DecodingSteps", "speech_chunks"),
    ("language detection (an encoder pass per note)", "chatscribe.core.engines.decoding_steps", "DecodingSteps",
     "clip_language_scores"),
    ("language detection (an encoder pass per note)", "chatscribe.core.engines.decoding_steps", "DecodingSteps",
     "languages_of"),
    ("language from the encoder output", "chatscribe.core.engines.decoding_steps", "DecodingSteps",
     "language_scores"),
    ("log-Mel features", "chatscribe.core.engines.decoding_steps", "DecodingSteps", "feature_windows"),
    ("encoder", "chatscribe.core.engines.decoding_steps", "DecodingSteps", "encode"),
    ("decoder (generate)", "chatscribe.core.engines.decoding_steps", "DecodingSteps", "generate"),
    ("word alignment (split packed notes)", "chatscribe.core.engines.decoding_steps", "DecodingSteps",
     "align_words"),
    ("notes on the plain path (faster-whisper transcribe())", "chatscribe.core.engines.faster_whisper",
     "FasterWhisperEngine", "transcribe_plain"),
    ("coverage pass (stretches decoded again)", "chatscribe.core.engines.faster_whisper", "FasterWhisperEngine",
     "transcribe_part"),
    ("quality pass: speech mask (Silero)", "chatscribe.core.jobs.runner", "", "speech_mask"),
    ("quality pass: checks", "chatscribe.core.jobs.runner", "", "screen"),
    ("coverage check", "chatscribe.core.jobs.runner", "", "complete"),
)
INCLUSIVE = {"language detection (an encoder pass per note)", "notes on the plain path (faster-whisper transcribe())",
             "coverage pass (stretches decoded again)"}
"""Steps whose time includes the wrapped steps they call (their encoder passes are theirs)."""


class StepProfile:
    def __init__(self, steps: tuple[tuple[str, str, str, str], ...] = STEPS) -> None:
        import importlib

        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []
        for label, module_name, owner_name, attribute in steps:
            owner: Any = importlib.import_module(module_name)
            if owner_name:
                owner = getattr(owner, owner_name)
            if not hasattr(owner, attribute):
                continue
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            self._undo.append((owner, attribute, original))
            setattr(owner, attribute, self._wrap(label, original))

    def _wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._local.__dict__.get("inside", 0):
                return fn(*args, **kwargs)  # counted as part of an inclusive step
            stack: list[float] = self._local.__dict__.setdefault("children", [])
            inclusive = label in INCLUSIVE
            if inclusive:
                self._local.inside = 1
            stack.append(0.0)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                if inclusive:
                    self._local.inside = 0
                elapsed = time.perf_counter() - started
                children = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with self._lock:
                    self.seconds[label] += elapsed - children
                    self.calls[label] += 1

        return timed

    def close(self) -> None:
        for owner, attribute, original in reversed(self._undo):
            setattr(owner, attribute, original)
        self._undo.clear()

    def rows(self, wall_s: float) -> list[list[str]]:
        """One row per step that ran: calls, seconds, share of the wall time; the rest as its own row."""
        rows = []
        for label in dict.fromkeys(s[0] for s in STEPS):
            if self.calls.get(label):
                seconds = self.seconds[label]
                rows.append([label, str(self.calls[label]), f"{seconds:.2f} s", f"{seconds / wall_s * 100:.0f} %"])
        rest = wall_s - sum(self.seconds.values())
        rows.append(["everything else (service, scheduler, packing, waiting)", "", f"{rest:.2f} s",
                     f"{rest / wall_s * 100:.0f} %"])
        return rows
