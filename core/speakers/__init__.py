"""Who said what: speaker labels by channel or by voice (issue: calls, meetings and interviews in chats).

channels.py tells apart channels that carry different voices; encoder.py runs Resemblyzer's pretrained
voice encoder (weights from the pinned `speakers` extra, sha256-checked); voices.py finds who speaks when
on one channel; clustering.py groups voice vectors; labels.py puts labels on the transcript's words;
step.py is the step the transcription worker runs after the quality pass and the coverage check.
"""

from __future__ import annotations

from .encoder import EncoderUnavailable, VoiceEncoder, unavailable_reason
from .step import (
    StepReport,
    VoiceFinder,
    by_channel,
    by_voice,
    engine_options,
    run_step,
    separate_channels,
    wants_speakers,
)
from .voices import Turn, Voices, find_voices

__all__ = [
    "EncoderUnavailable",
    "StepReport",
    "Turn",
    "VoiceEncoder",
    "VoiceFinder",
    "Voices",
    "by_channel",
    "by_voice",
    "engine_options",
    "find_voices",
    "run_step",
    "separate_channels",
    "unavailable_reason",
    "wants_speakers",
]
