"""The speaker step of a transcription, run by the worker that holds the note's audio (core/jobs/runner.py).

Channels first: a recording whose channels carry different voices (channels.py) is transcribed channel by
channel, through the same engine, quality pass and coverage check, and each channel's segments carry its
name. Otherwise, once the mono transcript is checked, voices are found (voices.py) and words given to them
(labels.py). A failure here never costs the answer: the plain transcript goes out with speaker_note.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .. import sentences
from ..errors import ChatscribeError, MediaError
from ..media import SAMPLE_RATE, ChannelAudio, decode_audio, decode_channels
from ..options import TranscribeOptions
from ..quality import speech_mask
from ..transcript import Segment, Transcript
from .channels import isolated, judge
from .encoder import EMBEDDING_SIZE, EncoderUnavailable, VoiceEncoder, normalize_volume, shared_encoder
from .labels import labelled, name_known, split_by_speaker
from .voices import Voices, find_voices, speech_spans

log = logging.getLogger(__name__)

KNOWN_MATCH = 0.75
"""Cosine similarity between a known speaker's clip and a voice's mean above which the voice is named.
One person's recordings lie above 0.9, different people below 0.7 (the shared audio: bench/bench_speakers.py)."""
MAX_REFERENCE_S = 30.0
"""A known speaker's clip longer than this is left out (2–10 s are asked for)."""

Transcribe = Callable[[np.ndarray, int, int], Transcript]
"""The engine, the quality pass and the coverage check over one channel's samples (the channel's index and the
number of channels come along, for progress)."""


@dataclass(frozen=True, slots=True)
class StepReport:
    """How the step went, for /metrics and the log."""

    outcome: str
    """"channels", "voices", "one" (one voice or none), "unavailable" (the extra is missing), "failed"."""
    seconds: float


def wants_speakers(options: TranscribeOptions, duration_s: float, auto_min_s: float) -> bool:
    return options.speakers == "on" or (options.speakers == "auto" and duration_s >= auto_min_s)


def engine_options(options: TranscribeOptions, wanted: bool) -> TranscribeOptions:
    """What the engine is asked: word times whenever speakers are wanted (words are given to voices by time)."""
    return dataclasses.replace(options, word_timestamps=True) if wanted and not options.word_timestamps else options


def separate_channels(data: bytes, max_duration_s: float) -> ChannelAudio | None:
    """The recording's channels when they carry different voices; None for mono or one signal on all."""
    channels = decode_channels(data, max_duration_s=max_duration_s)
    if channels is None:
        return None
    verdict = judge(channels, [speech_mask(c) for c in channels.samples])
    log.debug("channels: %s", verdict)
    if not verdict.separate:
        return None
    kept = verdict.speaking
    alone = isolated(channels)
    return ChannelAudio(alone.samples[list(kept)], tuple(channels.names[i] for i in kept), channels.truncated)


def by_channel(channels: ChannelAudio, transcribe: Transcribe, options: TranscribeOptions) -> Transcript:
    """Each channel transcribed on its own, labelled with its name (or a known speaker's), merged in time."""
    parts = [transcribe(samples, index, len(channels.samples)) for index, samples in enumerate(channels.samples)]
    names = list(channels.names)
    if options.known_speakers:
        try:
            encoder = shared_encoder()
            means = np.stack([_voice_of(encoder, samples) for samples in channels.samples])
            for index, name in name_known(means, _references(encoder, options), KNOWN_MATCH).items():
                names[index] = name
        except (EncoderUnavailable, ImportError) as exc:
            log.info("known speakers not matched to channels: %s", exc)
    owned: list[tuple[Segment, int | None]] = sorted(
        ((segment, index) for index, part in enumerate(parts) for segment in part.segments),
        key=lambda pair: (pair[0].start, pair[1]))
    lead = max(parts, key=lambda p: len(p.text))
    merged = dataclasses.replace(
        lead, segments=tuple(s for s, _ in owned),
        dropped=tuple(s for p in parts for s in p.dropped),
        gaps=tuple(sorted({g for p in parts for g in p.gaps}, key=lambda g: g.start)),
        duration_s=max(p.duration_s for p in parts), truncated=any(p.truncated for p in parts) or channels.truncated)
    return labelled(merged, owned, dict(enumerate(names)))


class VoiceFinder(Protocol):
    """Who speaks when on mono 16 kHz samples: the seam for another diarizer than the bundled encoder.

    A deployment with pyannote.audio and its (hub-gated) models can pass one to LocalRunner(voice_finder=...):
    run its pipeline on `{"waveform": torch.from_numpy(samples)[None], "sample_rate": 16000}` with
    min_speakers/max_speakers and turn its tracks into `Voices(turns, centroids)` (centroids may be empty:
    known speakers are then matched with the bundled encoder's vectors of each voice's turns)."""

    def __call__(self, samples: np.ndarray, least: int, most: int | None) -> Voices: ...


def by_voice(transcript: Transcript, samples: np.ndarray, options: TranscribeOptions,
             finder: VoiceFinder | None = None) -> Transcript:
    """Voices found in mono `samples`, words given to them; raises EncoderUnavailable/ImportError without the
    extra (and no `finder`)."""
    if not transcript.has_speech:
        return transcript
    least, most = options.min_speakers or 1, options.max_speakers
    encoder: VoiceEncoder | None = None
    if finder is not None:
        voices = finder(samples, least, most)
    else:
        encoder = shared_encoder()
        voices = find_voices(samples, encoder, least=least, most=most)
    if voices.count < 2 and not options.known_speakers:
        return transcript
    names: dict[int, str] = {}
    if options.known_speakers:
        encoder = encoder or shared_encoder()
        means = voices.centroids if len(voices.centroids) == voices.count else _means(encoder, samples, voices)
        names = name_known(means, _references(encoder, options), KNOWN_MATCH)
    return labelled(transcript, split_by_speaker(transcript.segments, voices.turns), names)


def _means(encoder: VoiceEncoder, samples: np.ndarray, voices: Voices) -> np.ndarray:
    """Each voice's vector from its turns' audio (for a finder that gives no vectors of its own)."""
    speakers = sorted({t.speaker for t in voices.turns})
    rows = []
    for k in speakers:
        audio = np.concatenate([samples[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)] for t in voices.turns
                                if t.speaker == k])
        rows.append(encoder.embed_utterance(audio))
    return np.stack(rows) if rows else np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)


def with_note(transcript: Transcript, note: str) -> Transcript:
    return dataclasses.replace(transcript, speaker_note=note)


def run_step(options: TranscribeOptions, plain: Callable[[], Transcript], data: bytes | None, samples: np.ndarray,
             transcribe: Transcribe | None, max_duration_s: float, finder: VoiceFinder | None = None,
             ) -> tuple[Transcript, StepReport]:
    """The transcript with speakers, or `plain()` (the mono transcript, made at most once) with a note.

    `data` is the note's media (None: voices only, no channel check); `transcribe` runs one channel through
    the engine and the checks; `plain` gives the checked mono transcript.
    """
    started = time.monotonic()
    channels = None
    if data is not None and transcribe is not None:
        try:
            channels = separate_channels(data, max_duration_s)
        except MediaError:
            raise
        except Exception:
            log.warning("the channel check failed; going on as mono", exc_info=True)
    if channels is not None and transcribe is not None:
        try:
            return by_channel(channels, transcribe, options), StepReport("channels", time.monotonic() - started)
        except ChatscribeError:
            raise  # the engine's own refusal, as the mono path would give it
        except Exception:
            log.warning("transcribing channel by channel failed; answering from the mixed-down audio", exc_info=True)
            return with_note(plain(), sentences.SPEAKERS_NOT_TOLD_APART), StepReport(
                "failed", time.monotonic() - started)
    transcript = plain()
    started = time.monotonic()  # the mono transcription is not the step's time
    try:
        result = by_voice(transcript, samples, options, finder=finder)
    except (EncoderUnavailable, ImportError) as exc:
        log.warning("speakers asked for but not available: %s", exc)
        return with_note(transcript, sentences.SPEAKERS_UNAVAILABLE), StepReport(
            "unavailable", time.monotonic() - started)
    except Exception:
        log.warning("the speaker step failed; answering without labels", exc_info=True)
        return with_note(transcript, sentences.SPEAKERS_NOT_TOLD_APART), StepReport(
            "failed", time.monotonic() - started)
    outcome = "voices" if len(result.speakers) > 1 else "one"
    return result, StepReport(outcome, time.monotonic() - started)


def _voice_of(encoder: VoiceEncoder, samples: np.ndarray) -> np.ndarray:
    spans = speech_spans(samples)
    speech = np.concatenate([samples[a:b] for a, b in spans]) if spans else samples
    return encoder.embed_utterance(normalize_volume(speech))


def _references(encoder: VoiceEncoder, options: TranscribeOptions) -> list[tuple[str, np.ndarray]]:
    """Each known speaker's voice vector; a clip that cannot be decoded is left out (logged), not fatal."""
    out = []
    for known in options.known_speakers:
        try:
            clip = decode_audio(known.audio, max_duration_s=MAX_REFERENCE_S).samples
        except MediaError as exc:
            log.info("known speaker %r: clip unreadable (%s)", known.name, exc)
            continue
        out.append((known.name, _voice_of(encoder, clip)))
    return out


