"""Runners do the transcription work the service hands them: the seam for scale-out.

`LocalRunner` runs it in this process (fair scheduler -> decode -> engine -> quality pass) on daemon
threads; a distributed runner sends the same `Work` to transcription workers instead. The service
keeps everything else (cache, journal, limits, delivery) whichever runner it has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..coverage import complete
from ..engines.base import Engine
from ..engines.batching import MAX_NOTE_S, BatchingMode, Clip, make_batcher
from ..media import SAMPLE_RATE, DecodedAudio, decode_audio
from ..metrics import Metrics
from ..options import TranscribeOptions
from ..quality import screen, segment_flags, speech_mask
from ..speakers import VoiceFinder, engine_options, run_step, wants_speakers
from ..transcript import HALLUCINATION, Segment, Transcript
from .journal import ProgressUpdate
from .scheduler import FairScheduler, Release, Ticket
from .speed import SpeedEstimate
from .threads import run_in_daemon_thread

log = logging.getLogger(__name__)

Notify = Callable[[ProgressUpdate], None]


@dataclass(frozen=True, slots=True)
class SegmentDone:
    """One segment of a note, as soon as the engine has decoded it: the seam for text shown while the rest
    is still being transcribed (the HTTP API's `transcript.text.delta` events; live text in a chat's status).

    `segment` carries the flags the quality pass gives it (a likely hallucination is never reported), its
    times, its text and, when word timestamps were asked, its words with their probabilities. Joined in
    order (stripped, with single spaces) the reported segments are the start of the final transcript's
    text in the usual case; the final transcript stays the authority: the coverage check may still add a
    passage it decoded again (core/coverage.py). Nothing is reported for a note transcribed in a batch with
    others, for an answer from the cache or one shared with an identical file being transcribed, nor by a
    runner in another process (core/scaleout): their text arrives with the transcript."""

    segment: Segment
    index: int
    """0, 1, 2... among the segments reported for this note."""
    fraction: float
    """Share of the audio decoded once this segment was."""


OnSegment = Callable[[SegmentDone], None]
"""Called on the event loop, in decoding order."""


@dataclass(frozen=True, slots=True)
class Work:
    chat_id: str
    """The unit of fairness."""
    data: bytes
    duration_s: float
    """Declared or estimated length, for ordering and estimates."""
    options: TranscribeOptions
    on_start: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Called in the worker thread just before the media is decoded (the journal marks the job's media in hand)."""
    unbatched: bool = False
    """Never batched with other notes (a job suspected of crashing the process: core/jobs/crashes.py)."""
    on_segment: OnSegment | None = field(default=None, compare=False, repr=False)
    """Each segment as it is decoded (SegmentDone); a note that goes through a batch reports none."""
    conversation: str | None = None
    """Whose words these are (a chat on its platform, an API caller, one CLI run): notes of different
    conversations never share a decoding sequence (LocalRunner.batch_key). None: a conversation of its
    own, packed with no other note."""


class Runner(Protocol):
    model_id: str
    """Identifies weights and decoding settings: part of every cache key."""

    async def run(self, work: Work, notify: Notify | None = None) -> Transcript:
        """Transcribe `work` in its fair turn; raises ChatscribeError for bad media."""
        ...

    def backlog(self) -> tuple[int, float]:
        """(jobs waiting, seconds of audio waiting)."""
        ...

    def estimate_wait_s(self) -> float:
        """Seconds until a job submitted now would start, from measured speed."""
        ...

    def close(self) -> None:
        """Start no more work; waiting runs raise ShuttingDown."""
        ...


@dataclass(eq=False)
class _LocalJob:
    work: Work
    notify: Notify | None
    future: asyncio.Future[Transcript]


class LocalRunner:
    """Transcribes in this process; short notes waiting together share engine calls (core/engines/batching.py)."""

    def __init__(
        self, engine: Engine, *, slots: int, max_duration_s: float, metrics: Metrics, batch_window_s: float = 0.03,
        batching: BatchingMode = "auto", max_batch: int | None = None, batch_beam_size: int = 1,
        pack_across_conversations: bool = False, on_batch: Callable[[tuple[Work, ...]], None] | None = None,
        speakers_auto_min_s: float = 60.0, voice_finder: VoiceFinder | None = None,
    ) -> None:
        """`batching`, `max_batch` (None: from the device) and `batch_beam_size` shape cross-request
        batching (core/engines/batching.py); `batch_window_s` is how long a free slot may wait for a burst.
        `pack_across_conversations` lets notes of different conversations share a packed window (a
        single-tenant deployment only); `on_batch` hears of each batch the scheduler composed."""
        self.engine = engine
        self.pack_across_conversations = pack_across_conversations
        self.on_batch = on_batch
        self.batcher = make_batcher(engine, batching, beam_size=batch_beam_size)
        cap = max_batch or (default_max_batch(engine) if self.batcher else 1)
        self.model_id = self.batcher.model_id if self.batcher else engine.model_id
        self.scheduler = FairScheduler(slots, max_batch=cap, window_s=batch_window_s)
        self.speed = SpeedEstimate()
        self.max_duration_s = max_duration_s
        self.speakers_auto_min_s = speakers_auto_min_s
        """`speakers auto` labels recordings at least this long (CHATSCRIBE_SPEAKERS_AUTO_MIN_S)."""
        self.voice_finder = voice_finder
        """Another diarizer than the bundled voice encoder (core/speakers/step.py VoiceFinder), e.g. pyannote."""
        self.metrics = metrics
        self._batches: set[asyncio.Task[None]] = set()

    def backlog(self) -> tuple[int, float]:
        return self.scheduler.waiting, self.scheduler.waiting_audio_s()

    def estimate_wait_s(self) -> float:
        return self.speed.seconds_for(self.scheduler.waiting_audio_s(), self.scheduler.waiting) / self.scheduler.slots

    def close(self) -> None:
        self.scheduler.close()

    async def run(self, work: Work, notify: Notify | None = None) -> Transcript:
        pending = _LocalJob(work, notify, asyncio.get_running_loop().create_future())
        pending.future.add_done_callback(_retrieved)
        ticket = self.scheduler.submit(
            work.chat_id, work.duration_s, item=pending, on_grant=self._start,
            on_fail=lambda exc: _settle(pending, exc), batch_key=self.batch_key(work),
            on_position=self._positions(work, notify) if notify else None,
        )
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self.scheduler.withdraw(ticket)  # still waiting: give the place up; running: the batch goes on
            raise

    def batch_key(self, work: Work) -> Hashable | None:
        """Which waiting notes may share an engine call (equal keys; None: none): the one place that keeps
        one conversation's words out of another's transcript.

        Packing lays several notes into one decoding sequence, so Whisper's decoder reads one note's words
        as context for the next: there the key names the conversation. Batched windows (the GPU path),
        reduced windows (trimmed, the CPU path) and engines batching whole inputs decode each note in its
        own sequence, with the prompt only its options give (part of the key), so notes of any
        conversations may share a call; reduced windows of one length class only (`Batcher.call_key`)."""
        if self.batcher is None or work.duration_s > MAX_NOTE_S or work.unbatched:
            return None
        if wants_speakers(work.options, work.duration_s, self.speakers_auto_min_s):
            return None  # the speaker step needs word times and, for channels, the note's channels: on its own
        key = (*work.options.batch_key(), *self.batcher.call_key(work.duration_s))
        if self.pack_across_conversations or not self.batcher.may_pack(work.options):
            return key
        if work.conversation is None:
            return None
        return (*key, work.conversation)

    def _positions(self, work: Work, notify: Notify) -> Callable[[int], None]:
        def on_position(position: int) -> None:
            ahead = self.speed.seconds_for(self.scheduler.waiting_audio_s(), position) / self.scheduler.slots
            own = self.speed.seconds_for(work.duration_s, 1)
            notify(ProgressUpdate("queued", position=position, eta_s=ahead + own))

        return on_position

    def _start(self, tickets: list[Ticket], release: Release) -> None:
        batch: list[_LocalJob] = [t.item for t in tickets]
        if len(batch) > 1:
            conversations = {pending.work.conversation for pending in batch}
            log.debug("batch of %d notes from %d conversation(s)%s", len(batch), len(conversations),
                      " (packing across conversations allowed)" if self.pack_across_conversations else "")
        if self.on_batch is not None:
            self.on_batch(tuple(pending.work for pending in batch))
        task = asyncio.ensure_future(self._run_batch(batch, release))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(self, batch: list[_LocalJob], release: Release) -> None:
        try:
            for pending in batch:
                if pending.notify:
                    eta = self.speed.seconds_for(pending.work.duration_s, 1)
                    pending.notify(ProgressUpdate("transcribing", fraction=0.0, eta_s=eta))
            started = time.monotonic()
            if len(batch) == 1:
                one = batch[0]
                _settle(one, await run_in_daemon_thread(self._work, one.work, self._fractions(one),
                                                        _segments(one.work)))
            else:
                await run_in_daemon_thread(self._work_batch, batch, asyncio.get_running_loop())
            share = (time.monotonic() - started) / len(batch)
            for pending in batch:
                if pending.future.done() and not pending.future.cancelled() and pending.future.exception() is None:
                    self._observe(pending.future.result(), share)
        except Exception as exc:
            for pending in batch:
                _settle(pending, exc)
        finally:
            release()

    def _fractions(self, pending: _LocalJob) -> Callable[[float], None] | None:
        notify = pending.notify
        if notify is None:
            return None
        loop = asyncio.get_running_loop()

        def on_fraction(fraction: float) -> None:  # called from the worker thread
            eta = self.speed.seconds_for(pending.work.duration_s * (1 - fraction), 0)
            loop.call_soon_threadsafe(notify, ProgressUpdate("transcribing", fraction=fraction, eta_s=eta))

        return on_fraction

    def _observe(self, transcript: Transcript, elapsed_s: float) -> None:
        self.speed.observe(transcript.duration_s, elapsed_s)
        self.metrics.transcriptions.inc()
        self.metrics.audio_seconds.observe(transcript.duration_s)
        self.metrics.realtime_factor.set(self.speed.rtf)

    def _work(
        self, work: Work, on_fraction: Callable[[float], None] | None,
        on_segment: Callable[[Segment, np.ndarray, float], None] | None,
    ) -> Transcript | Exception:
        try:
            if work.on_start is not None:
                work.on_start()
            decoded = decode_audio(work.data, max_duration_s=self.max_duration_s)
            duration = len(decoded.samples) / SAMPLE_RATE
            if wants_speakers(work.options, duration, self.speakers_auto_min_s):
                return self._with_speakers(work, decoded, on_fraction, on_segment)
            speech = speech_mask(decoded.samples)
            sink = None if on_segment is None else lambda s: on_segment(s, speech, duration)
            raw = self.engine.transcribe(decoded.samples, work.options, on_fraction, sink)
            return _checked(raw, decoded, self.engine, work.options, speech)
        except Exception as exc:
            return exc

    def _with_speakers(
        self, work: Work, decoded: DecodedAudio, on_fraction: Callable[[float], None] | None,
        on_segment: Callable[[Segment, np.ndarray, float], None] | None,
    ) -> Transcript:
        """The note with speaker labels (core/speakers), on this worker thread: by channel where the channels
        carry different voices (each channel through the engine and the checks), else by voice after them."""
        asked = engine_options(work.options, wanted=True)
        duration = decoded.duration_s

        def plain() -> Transcript:
            speech = speech_mask(decoded.samples)
            sink = None if on_segment is None else lambda s: on_segment(s, speech, duration)
            raw = self.engine.transcribe(decoded.samples, asked, on_fraction, sink)
            return _checked(raw, decoded, self.engine, asked, speech)

        def one_channel(samples: np.ndarray, index: int, count: int) -> Transcript:
            channel = DecodedAudio(samples, decoded.truncated)
            share = None if on_fraction is None else lambda f: on_fraction((index + f) / count)
            return _checked(self.engine.transcribe(samples, asked, share), channel, self.engine, asked)

        transcript, report = run_step(work.options, plain, work.data, decoded.samples, one_channel,
                                      self.max_duration_s, self.voice_finder)
        self.metrics.speaker_steps.labels(report.outcome).inc()
        self.metrics.speaker_seconds.observe(report.seconds)
        return _as_asked(transcript, work.options)

    def _voices_in_batch(self, transcript: Transcript, audio: DecodedAudio, options: TranscribeOptions) -> Transcript:
        """A note that went through a batch although its decoded length wants speakers (its declared length
        did not): voices by segment, no word times, rather than none."""
        if not wants_speakers(options, audio.duration_s, self.speakers_auto_min_s):
            return transcript
        started = time.monotonic()
        transcript, report = run_step(options, lambda: transcript, None, audio.samples, None, self.max_duration_s,
                                      self.voice_finder)
        self.metrics.speaker_steps.labels(report.outcome).inc()
        self.metrics.speaker_seconds.observe(time.monotonic() - started)
        return transcript

    def _work_batch(self, batch: list[_LocalJob], loop: asyncio.AbstractEventLoop) -> None:
        """Each note decoded on its own (a bad file fails alone), the readable ones transcribed together;
        every answer goes out as soon as it is ready."""
        assert self.batcher is not None
        readable: list[tuple[_LocalJob, DecodedAudio]] = []
        masks: list[np.ndarray] = []  # one VAD pass a note, for the batcher's guard and the checks
        for pending in batch:
            try:
                if pending.work.on_start is not None:
                    pending.work.on_start()
                audio = decode_audio(pending.work.data, max_duration_s=self.max_duration_s)
                mask = speech_mask(audio.samples)
            except Exception as exc:  # this note's answer: the others go on
                loop.call_soon_threadsafe(_settle, pending, exc)
                continue
            readable.append((pending, audio))
            masks.append(mask)

        def on_result(index: int, raw: Transcript | Exception) -> None:
            pending, audio = readable[index]
            outcome: Transcript | Exception = raw
            if isinstance(raw, Transcript):
                try:
                    outcome = _checked(raw, audio, self.engine, pending.work.options, masks[index])
                    outcome = self._voices_in_batch(outcome, audio, pending.work.options)
                except Exception as exc:  # this note's answer, not the batch's
                    outcome = exc
            loop.call_soon_threadsafe(_settle, pending, outcome)

        notes = [Clip(audio.samples, pending.work.options, masks[i]) for i, (pending, audio) in enumerate(readable)]
        self.batcher.transcribe(notes, on_result)


def _as_asked(transcript: Transcript, options: TranscribeOptions) -> Transcript:
    """Word times the speaker step asked the engine for, taken off again when the person did not ask."""
    if options.word_timestamps:
        return transcript
    bare = tuple(dataclasses.replace(s, words=()) for s in transcript.segments)
    return dataclasses.replace(transcript, segments=bare)


def _checked(raw: Transcript, decoded: DecodedAudio, engine: Engine, options: TranscribeOptions,
             speech: np.ndarray | None = None) -> Transcript:
    """The quality pass and the coverage check (core/coverage.py), on the note's own audio, which only this
    worker holds: speech left without words is transcribed again here, or reported."""
    if speech is None:
        speech = speech_mask(decoded.samples)
    checked = complete(screen(raw, decoded.samples, speech), decoded.samples, speech, engine, options)
    return dataclasses.replace(checked, truncated=decoded.truncated)


def _segments(work: Work) -> Callable[[Segment, np.ndarray, float], None] | None:
    """The engine's raw segments, screened as the quality pass will screen them, to `work.on_segment` on
    the event loop; None when nobody listens."""
    listener = work.on_segment
    if listener is None:
        return None
    loop = asyncio.get_running_loop()
    reported = 0

    def on_segment(segment: Segment, speech: np.ndarray, duration_s: float) -> None:  # in the worker thread
        nonlocal reported
        flags = segment_flags(segment, speech)
        if HALLUCINATION in flags:
            return
        fraction = min(1.0, segment.end / duration_s) if duration_s else 1.0
        done = SegmentDone(dataclasses.replace(segment, flags=flags), reported, fraction)
        reported += 1
        loop.call_soon_threadsafe(listener, done)

    return on_segment


def _settle(pending: _LocalJob, outcome: Transcript | BaseException) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, BaseException):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)


def _retrieved(future: asyncio.Future[Transcript]) -> None:
    """Its caller may have gone (cancelled): the outcome is still looked at, so asyncio logs nothing."""
    if not future.cancelled():
        future.exception()


def default_max_batch(engine: Engine) -> int:
    """Notes per batch: a GPU takes many windows at once; a CPU answers a batch only when all of it is done."""
    return 32 if engine.device.device == "cuda" else 8


def default_slots(engine: Engine) -> int:
    return 2 if engine.device.device == "cuda" else 1
