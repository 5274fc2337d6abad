"""What a conversation's `forget` removed, and the sentence that tells its people so.

The bots only render `Forgotten.sentence`; the counting and the wording live here, once for every platform.
"""

from __future__ import annotations

from dataclasses import dataclass

from .i18n import Plural, Sentence


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
            return Sentence("There was nothing stored for this conversation: nothing to forget.")
        return Sentence("Done: I've forgotten this conversation's data ({transcripts}, {settings} and {jobs}). "
                        "Recordings still being transcribed are answered as usual and can be forgotten afterwards.",
                        transcripts=Plural("{n} cached transcript", "{n} cached transcripts", self.transcripts),
                        settings=Plural("{n} setting", "{n} settings", self.settings),
                        jobs=Plural("{n} job record", "{n} job records", self.jobs))


__all__ = ["Forgotten"]
