"""Word error rate after normalizing case and punctuation, as the acceptance criteria measure it."""

from __future__ import annotations

import jiwer

from chatscribe.core.quality import normalize


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>"))
