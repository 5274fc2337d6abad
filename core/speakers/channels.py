"""Speakers by channel: a call recorded with each side on its own channel needs no voice model at all.

A recording's channels carry different voices when they are not one signal: their samples are weakly
correlated, more than one channel holds speech, and where someone speaks one channel is clearly louder
than the other. A mono source saved as stereo (identical channels), ordinary stereo music or a stereo
microphone in a room (one sound on both channels, correlated, alike in level) count as mono.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..media import SAMPLE_RATE, ChannelAudio

SAME_SIGNAL_CORRELATION = 0.6
"""At or above this the channels are one sound (a stereo mix, a mono file saved as stereo)."""
LEVEL_FRAME_S = 0.1
LOUDER_DB = 10.0
"""A channel this much louder than another in a frame is where that frame's sound is."""
MIN_SEPARATE_SHARE = 0.25
"""At least this share of the loud frames must be clearly one channel's for the channels to count apart."""
QUIET_DB = -50.0
"""Frames quieter than this on every channel are left out of the level comparison (silence, hiss)."""
MIN_SPEECH_S = 1.0
"""A channel with less speech than this (by the VAD) is not a speaker's."""
BLEED_DB = 15.0
"""Where a channel is this much quieter than the loudest one, what it holds is the other side leaking in (a
headset's crosstalk, a phone's echo): transcribed, those words would come twice, under both labels."""


@dataclass(frozen=True, slots=True)
class ChannelVerdict:
    separate: bool
    correlation: float
    separate_share: float
    """Share of the loud frames where one channel is LOUDER_DB above every other."""
    speaking: tuple[int, ...]
    """Indexes of the channels holding speech."""


def judge(audio: ChannelAudio, speech_masks: list[np.ndarray]) -> ChannelVerdict:
    """Whether `audio`'s channels carry different voices; `speech_masks` are the channels' speech masks
    (core/quality.py speech_mask), one per channel."""
    samples = audio.samples
    speaking = tuple(i for i, mask in enumerate(speech_masks) if mask.sum() * 0.01 >= MIN_SPEECH_S)
    correlation = _max_correlation(samples)
    share = _separate_share(samples)
    separate = len(speaking) >= 2 and correlation < SAME_SIGNAL_CORRELATION and share >= MIN_SEPARATE_SHARE
    return ChannelVerdict(separate, correlation, share, speaking)


def _max_correlation(samples: np.ndarray) -> float:
    """The highest Pearson correlation between any two channels (1.0 for identical, ~0 for two voices)."""
    best = -1.0
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            a, b = samples[i].astype(np.float64), samples[j].astype(np.float64)
            sa, sb = a.std(), b.std()
            if sa < 1e-9 or sb < 1e-9:  # a silent channel: nothing in common with the other
                corr = 1.0 if sa < 1e-9 and sb < 1e-9 else 0.0
            else:
                corr = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
            best = max(best, corr)
    return best


def _separate_share(samples: np.ndarray) -> float:
    frame = int(LEVEL_FRAME_S * SAMPLE_RATE)
    n = samples.shape[1] // frame
    if n == 0:
        return 0.0
    energy = np.square(samples[:, : n * frame].reshape(len(samples), n, frame), dtype=np.float64).mean(axis=2)
    level = 10 * np.log10(energy + 1e-12)
    loud = level.max(axis=0) > QUIET_DB
    if not loud.any():
        return 0.0
    ranked = np.sort(level[:, loud], axis=0)
    return float(np.mean(ranked[-1] - ranked[-2] >= LOUDER_DB))


def isolated(audio: ChannelAudio) -> ChannelAudio:
    """Each channel silenced where another is BLEED_DB louder (kept 200 ms around what it holds itself), so that
    one person's words are transcribed on their own channel only; both keep what they say at the same time."""
    samples = audio.samples
    frame = int(LEVEL_FRAME_S * SAMPLE_RATE)
    n = -(-samples.shape[1] // frame)
    padded = np.pad(samples, ((0, 0), (0, n * frame - samples.shape[1])))
    energy = np.square(padded.reshape(len(samples), n, frame), dtype=np.float64).mean(axis=2)
    level = 10 * np.log10(energy + 1e-12)
    own = level >= level.max(axis=0, keepdims=True) - BLEED_DB
    kept = own.copy()
    for shift in (1, 2):  # a word's quiet onset and tail stay with it
        kept[:, shift:] |= own[:, :-shift]
        kept[:, :-shift] |= own[:, shift:]
    gate = np.repeat(kept, frame, axis=1)[:, : samples.shape[1]]
    return ChannelAudio((samples * gate).astype(np.float32), audio.names, audio.truncated)
