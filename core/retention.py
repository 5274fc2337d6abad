"""What a conversation's `forget` removed, and the sentence that tells its people so.

The bots only render `Forgotten.sentence`; the counting and the wording live here, once for every platform.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Forgotten:
    transcripts: int
    """Recordings whose cached transcripts this conversation can no longer get from the cache."""
    settings: int
    """Per-chat settings deleted (back to the defaults)."""
    jobs: int
    """Answered job records deleted from the journal."""

    @property
    def total(self) -> int:
        return self.transcripts + self.settings + self.jobs

    @property
    def sentence(self) -> str:
        """The confirmation shown in the conversation."""
        if self.total == 0:
            return "There was nothing stored for this conversation: nothing to forget."
        parts = [_count(self.transcripts, "cached transcript"), _count(self.settings, "setting"),
                 _count(self.jobs, "job record")]
        listed = ", ".join(parts[:-1]) + " and " + parts[-1]
        return (f"Done: I've forgotten this conversation's data ({listed}). "
                "Recordings still being transcribed are answered as usual and can be forgotten afterwards.")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


__all__ = ["Forgotten"]
