"""TranscriptionService: the one entry point bots, the HTTP API and the CLI call.

cache by platform id (a repeat is answered here, before any limit or the journal) -> admission (queue,
media budget, rate per person: core/jobs/admission.py) -> journal (core/jobs/journal.py) -> download
-> cache by content hash -> in-flight dedup (core/jobs/inflight.py) -> runner: fair scheduler, decode,
engine, quality pass (core/jobs/runner.py) -> cache -> the platform's Delivery.

`transcribe()` answers directly (CLI, HTTP); `submit()` journals the job first and answers through the
platform's Delivery, so accepted work survives restarts; the crash set-aside (core/jobs/crashes.py)
stops a file that kills the process from being tried forever. The stores: core/stores.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import sentences
from .cache import TranscriptCache
from .config import Settings
from .delivery.courier import LiveProgress
from .delivery.retry import deliver_with_retries
from .engines.base import Engine
from .errors import CannotTranslate, ChatscribeError, MediaTooLarge, NotReady, ShuttingDown, StorageUnavailable
from .jobs.admission import Admission, AdmissionControl, OtherFrontEnds, counted
from .jobs.crashes import InHand, run_unbatched, set_aside
from .jobs.inflight import InFlight
from .jobs.journal import Delivery, Job, JournalEntry, ProgressUpdate, new_job_id
from .jobs.runner import LocalRunner, OnSegment, Runner, Work, default_slots
from .keys import TranscriptKey, content_hash, transcript_key
from .language_choice import hints_for, is_confident, remembered
from .languages import code_of_locale
from .media import MediaRequest, check_declared_duration, check_declared_size
from .metrics import Metrics
from .options import TranscribeOptions
from .retention import Forgotten
from .stores import Stores
from .transcript import Transcript

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]
INTERNAL_ERROR = sentences.INTERNAL_ERROR


class TranscriptionService:
    def __init__(self, *, settings: Settings, engine: Engine | None = None, metrics: Metrics | None = None) -> None:
        """`engine` may come later (set_engine) so that the HTTP server can answer probes while it loads."""
        self.settings = settings
        self.metrics = metrics or Metrics()
        stores = Stores.open(settings)
        self.cache, self.journal, self.preferences = stores.cache, stores.journal, stores.preferences
        self._runner: Runner | None = None
        if engine is not None:
            self.set_engine(engine)
        self._deliveries: dict[str, Delivery] = {}
        self._inflight = InFlight()
        self._tasks: set[asyncio.Task[None]] = set()
        self.admission = AdmissionControl(queue_max=settings.queue_max, rate=settings.rate_per_s,
                                          media_bytes=settings.media_memory_bytes, metrics=self.metrics,
                                          wait_s=self.estimate_wait_s)
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> TranscriptionService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running transcriptions finish for up to the grace, keep the rest journaled."""
        self._closing = True
        if self._runner is not None:
            self._runner.close()
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.cache.close()
        self.journal.close()
        self.preferences.close()

    def set_engine(self, engine: Engine) -> None:
        """Transcribe in this process with `engine` (the one model instance, shared by every bot)."""
        slots = self.settings.workers or default_slots(engine)
        self.set_runner(LocalRunner(engine, slots=slots, max_duration_s=self.max_duration_s, metrics=self.metrics,
                                    batch_window_s=self.settings.batch_window_ms / 1000,
                                    pack_across_conversations=self.settings.pack_across_conversations,
                                    speakers_auto_min_s=self.settings.speakers_auto_min_s))

    def set_runner(self, runner: Runner) -> None:
        self._runner = runner

    def share(self, *, cache: TranscriptCache, limits: OtherFrontEnds) -> None:
        """Scale-out: a cache and busy/rate limits shared with other front ends (core/scaleout/shared_cache.py,
        core/scaleout/limits.py)."""
        self.cache.close()
        self.cache = cache
        self.admission.shared = limits

    @property
    def closing(self) -> bool:
        """True once shutdown began: no new work is taken."""
        return self._closing

    @property
    def engine_ready(self) -> bool:
        """False until the model is loaded (or the workers are reachable): /readyz says so."""
        return self._runner is not None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise NotReady()
        return self._runner

    @property
    def max_file_bytes(self) -> int:
        return self.settings.max_file_bytes

    @property
    def max_duration_s(self) -> float:
        return self.settings.max_duration_s

    # -- direct path -----------------------------------------------------------------------------

    async def admit(self, *, platform: str, user_id: str, size_bytes: int) -> Admission:
        """Take a place before reading the media (closing, queue, rate limit, media budget); Busy if none."""
        self._check_open()
        await self.admission.check(platform, user_id, size_bytes)
        return self.admission.admit(size_bytes)

    async def transcribe(
        self, request: MediaRequest, options: TranscribeOptions | None = None, *,
        progress: ProgressCallback | None = None, admission: Admission | None = None,
        segments: OnSegment | None = None,
    ) -> Transcript:
        """Transcribe now and return the result; raises ChatscribeError for anything a user can fix.

        `admission`: the place taken with admit() before the media was read; taken here when None.
        `segments`: each segment as it is decoded (core/jobs/runner.py SegmentDone), on the event loop;
        none for an answer from the cache or a note transcribed in a batch."""
        options = options or TranscribeOptions()
        try:
            self._check_task(options)
        except ChatscribeError:
            if admission is not None:
                admission.close()
            raise
        options = await self._with_hints(request, options)
        if admission is None:
            hit = await self._answered(request, options)
            if hit is not None:
                return hit
            admission = await self.admit(platform=request.platform, user_id=request.user_id,
                                         size_bytes=request.size_bytes or 0)
        started = time.monotonic()
        try:
            transcript = await self._run(counted(request, admission.hold), options, progress, segments=segments)
        except ChatscribeError as exc:
            self.metrics.errors.labels(exc.code).inc()
            raise
        finally:
            admission.close()
        self.metrics.latency.labels(request.platform).observe(time.monotonic() - started)
        return transcript

    async def cached(self, request: MediaRequest, options: TranscribeOptions | None = None) -> Transcript | None:
        """The answer for a file known by its platform id, without downloading it."""
        if not request.platform_file_id:
            return None
        known = await asyncio.to_thread(self.cache.hash_for, request.platform, request.platform_file_id,
                                        request.chat_id)
        if known is None:
            return None
        hit = await asyncio.to_thread(self.cache.get, self._key(options or TranscribeOptions(), known))
        if hit:
            self.metrics.cache_hits.labels("platform_id").inc()
        return hit

    # -- journaled path ------------------------------------------------------------------------------

    def register(self, platform: str, delivery: Delivery) -> None:
        self._deliveries[platform] = delivery

    async def submit(self, request: MediaRequest, options: TranscribeOptions | None = None) -> Job:
        """Accept a job: journaled before this returns; the answer goes to the platform's Delivery."""
        delivery = self._deliveries[request.platform]
        options = options or TranscribeOptions()
        self._check_task(options)  # the chat hears at once, before anything is journaled or transcribed
        options = await self._with_hints(request, options)
        hit = await self._answered(request, options)
        if hit is not None:
            return self._answer_repeat(request, options, hit, delivery)
        check_declared_size(request.size_bytes, self.max_file_bytes)
        check_declared_duration(request.duration_hint_s, self.max_duration_s)
        await self.admission.check(request.platform, request.user_id, request.size_bytes or 0)
        job = await asyncio.to_thread(self.journal.add, request, options)
        log.info("job=%s accepted platform=%s chat=%s kind=%s", job.id, request.platform, request.chat_id,
                 request.kind)
        self.metrics.queue_depth.labels(request.platform).inc()
        self._spawn(self._process(job, delivery))
        return job

    async def resume(self, platform: str) -> int:
        """Run again and answer the platform's jobs a previous process accepted but did not finish."""
        delivery = self._deliveries[platform]
        entries = await asyncio.to_thread(self.journal.unfinished, platform, delivery)
        for entry in entries:
            log.info("job=%s resumed in state %s", entry.job.id, entry.state)
            self.metrics.queue_depth.labels(platform).inc()
            self._spawn(self._resume_one(entry, delivery))
        return len(entries)

    async def forget(self, platform: str, chat_id: str) -> Forgotten:
        """Delete what one conversation left behind: its links to cached transcripts (an entry only it
        brought is deleted; one another conversation also brought stays theirs, unreachable from this one
        except by sending the media again: see core/cache.py), its settings, and its answered job records.
        Work accepted and not yet answered is answered first, so nothing accepted is lost."""
        transcripts = await asyncio.to_thread(self.cache.forget, platform, chat_id)
        settings = await asyncio.to_thread(self.preferences.forget, platform, chat_id)
        jobs = await asyncio.to_thread(self.journal.forget, platform, chat_id)
        log.info("forgot platform=%s chat=%s: %d transcripts, %d settings, %d jobs", platform, chat_id,
                 transcripts, settings, jobs)
        return Forgotten(transcripts=transcripts, settings=settings, jobs=jobs)

    async def note(self, job_id: str, key: str, value: str) -> None:
        """Remember a small value with a job (e.g. its status message id), kept across restarts."""
        await asyncio.to_thread(self.journal.note, job_id, key, value)

    async def wait_idle(self) -> None:
        """Until every accepted job has been answered (tests, benchmarks, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def estimate_wait_s(self) -> float:
        return self.runner.estimate_wait_s()

    # -- internals -----------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        self.admission.active += 1
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.admission.active -= 1
        self._tasks.discard(task)

    def _check_open(self) -> None:
        if self._closing:
            raise ShuttingDown()
        if self._runner is None:
            raise NotReady()

    async def _answered(self, request: MediaRequest, options: TranscribeOptions) -> Transcript | None:
        """The cached answer for a file this conversation sent before (known by its platform id), looked
        up before any limit is counted or the journal is written: a repeat costs the sender nothing."""
        self._check_open()
        return await self.cached(request, options)

    def _answer_repeat(self, request: MediaRequest, options: TranscribeOptions, transcript: Transcript,
                       delivery: Delivery) -> Job:
        """Deliver a cached answer. No journal row: there is nothing to resume (a restart before it is
        sent loses only this delivery, and sending the file again answers it again)."""
        job = Job(id=new_job_id(), request=request, options=options)
        log.info("job=%s answered from the cache platform=%s chat=%s", job.id, request.platform,
                 request.chat_id)
        self.metrics.queue_depth.labels(request.platform).inc()
        self._spawn(self._deliver(job, transcript, delivery))
        return job

    def _key(self, options: TranscribeOptions, media_hash: str) -> TranscriptKey:
        return transcript_key(self.runner.model_id, options, media_hash)

    async def _process(self, job: Job, delivery: Delivery, *, unbatched: bool = False) -> None:
        started = time.monotonic()
        outcome: Transcript | ChatscribeError
        try:
            await asyncio.to_thread(self.journal.set_state, job.id, "running")

            live = LiveProgress(job, delivery, self._spawn_quiet)  # the status shows the text so far

            async with self.admission.holding(job.request) as request:
                outcome = await self._run(request, job.options, live.progress, job_id=job.id, unbatched=unbatched,
                                          segments=live.segment)
        except ChatscribeError as exc:
            if isinstance(exc, ShuttingDown) and self._closing:
                # Stopping before its turn came: accepted work is not answered "send it again"; it stays
                # journaled (running) and the next start resumes it.
                log.info("job=%s left in the journal for the next start", job.id)
                return
            outcome = exc
        except asyncio.CancelledError:
            # Shutdown: the journal still says queued/running and the next start resumes it. Stopped by
            # us, not by its media: no crash is counted against it.
            self.journal.media_in_hand(job.id, False)
            raise
        except Exception:
            log.exception("job=%s failed unexpectedly", job.id)
            outcome = ChatscribeError(INTERNAL_ERROR)
        self.metrics.latency.labels(job.request.platform).observe(time.monotonic() - started)
        await self._conclude(job, outcome, delivery)

    async def _conclude(self, job: Job, outcome: Transcript | ChatscribeError, delivery: Delivery) -> None:
        if isinstance(outcome, ChatscribeError):
            self.metrics.errors.labels(outcome.code).inc()
        await asyncio.to_thread(self.journal.set_outcome, job.id, outcome)
        await self._deliver(job, outcome, delivery)

    async def _resume_one(self, entry: JournalEntry, delivery: Delivery) -> None:
        if entry.outcome is not None:
            await self._deliver(entry.job, entry.outcome, delivery)
        elif (aside := set_aside(entry.crashes)) is not None:
            log.error("job=%s set aside: the process died %d times while reading or transcribing it",
                      entry.job.id, entry.crashes)
            await self._conclude(entry.job, aside, delivery)
        else:
            await self._process(entry.job, delivery, unbatched=run_unbatched(entry.crashes))

    async def _deliver(self, job: Job, outcome: Transcript | ChatscribeError, delivery: Delivery) -> None:
        platform = job.request.platform
        delivered = await deliver_with_retries(delivery, job, outcome, self.journal)
        self.metrics.queue_depth.labels(platform).dec()
        if not delivered:
            self.metrics.errors.labels("delivery").inc()
            return
        await asyncio.to_thread(self.journal.delivered, job.id)
        kind = "error" if isinstance(outcome, ChatscribeError) else "transcript"
        self.metrics.jobs.labels(platform, kind).inc()
        log.info("job=%s delivered (%s)", job.id, kind)

    async def _run(
        self, request: MediaRequest, options: TranscribeOptions, progress: ProgressCallback | None, *,
        job_id: str | None = None, unbatched: bool = False, segments: OnSegment | None = None,
    ) -> Transcript:
        """`job_id`: the journaled job, marked while its media is in hand (core/jobs/crashes.py)."""
        hit = await self.cached(request, options)
        if hit is not None:
            return hit
        check_declared_size(request.size_bytes, self.max_file_bytes)
        data = await request.fetch(self.max_file_bytes)
        if len(data) > self.max_file_bytes:
            raise MediaTooLarge(len(data), self.max_file_bytes)
        key = self._key(options, await asyncio.to_thread(content_hash, data))
        # The conversation's link to this content (by file id when there is one): what `forget` removes.
        await asyncio.to_thread(self.cache.alias, request.platform, request.platform_file_id, key.content_hash,
                                request.chat_id)
        hit = await asyncio.to_thread(self.cache.get, key)
        if hit is not None:
            self.metrics.cache_hits.labels("content").inc()
            return hit
        async def transcribe_and_cache() -> Transcript:
            transcript = await self._transcribe_now(request, data, options, progress, job_id, unbatched, segments)
            await asyncio.to_thread(self.cache.put, key, transcript)
            return transcript

        # The same media being transcribed already (a quick re-send, another conversation): share it.
        transcript = await self._inflight.share(key, transcribe_and_cache)
        await self._remember_language(request, transcript)
        return transcript

    # -- the conversation's languages (core/language_choice.py) ------------------------------------------

    def _local_engine(self) -> Engine | None:
        """The engine of this process's runner; None when scaled out (the workers' model is not known here)."""
        return self._runner.engine if isinstance(self._runner, LocalRunner) else None

    def _check_task(self, options: TranscribeOptions) -> None:
        """Translation asked of an English-only model is refused before any work. Scaled out, the workers'
        model is not known here: their engine refuses it the same way, once the job's turn comes."""
        engine = self._local_engine()
        if options.task == "translate" and engine is not None and not engine.multilingual:
            raise CannotTranslate(engine.model_id)

    async def _with_hints(self, request: MediaRequest, options: TranscribeOptions) -> TranscribeOptions:
        """The options with what the conversation tells about the language: its recent notes' languages
        and the sender's client language, for detection to lean on when a short clip leaves it unsure."""
        if options.language or options.language_hints or len(options.expected_languages) == 1:
            return options  # the language is given: nothing to choose
        engine = self._local_engine()
        if engine is not None and not engine.multilingual:
            return options  # English only: hints would only keep notes with different ones out of a batch
        stored = await asyncio.to_thread(self.preferences.get, request.platform, request.chat_id, RECENT_LANGUAGES)
        hints = hints_for(_codes(stored), code_of_locale(request.sender_language))
        return dataclasses.replace(options, language_hints=hints) if hints else options

    async def _remember_language(self, request: MediaRequest, transcript: Transcript) -> None:
        """A language detected with confidence joins the conversation's recent languages (at most
        RECENT_LIMIT, kept with its settings and deleted by `forget`). Best effort: a full disk loses it."""
        language = transcript.language
        if (language is None or transcript.language_reason != "detected" or not transcript.has_speech
                or not is_confident(transcript.language_probability)):
            return
        try:
            await asyncio.to_thread(self.preferences.update, request.platform, request.chat_id, RECENT_LANGUAGES,
                                    lambda stored: ",".join(remembered(_codes(stored), language)))
        except StorageUnavailable as exc:
            log.debug("the conversation's recent language was not kept: %s", exc)

    async def _transcribe_now(
        self, request: MediaRequest, data: bytes, options: TranscribeOptions, progress: ProgressCallback | None,
        job_id: str | None, unbatched: bool, segments: OnSegment | None = None,
    ) -> Transcript:
        in_hand = InHand(self.journal.media_in_hand, job_id)  # set and cleared in worker threads
        duration = await asyncio.to_thread(in_hand.probe, data)
        check_declared_duration(duration, self.max_duration_s)
        work = Work(request.chat_id, data, duration or request.duration_hint_s or 30.0, options,
                    on_start=lambda: in_hand(True), unbatched=unbatched, on_segment=segments,
                    conversation=f"{request.platform}:{request.chat_id}")

        def notify(update: ProgressUpdate) -> None:
            assert progress is not None
            result = progress(update)
            if asyncio.iscoroutine(result):
                self._spawn_quiet(result)

        return await self.runner.run(work, notify if progress else None)

    def _spawn_quiet(self, coro: Any) -> None:
        """Progress notifications are best effort: their failures are logged, never raised."""
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)


RECENT_LANGUAGES = "recent_languages"
"""The preferences key of a conversation's recent languages ("de,en", most recent first)."""


def _codes(stored: str | None) -> tuple[str, ...]:
    return tuple(code for code in (stored or "").split(",") if code)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("progress update failed: %s", task.exception())


__all__ = ["TranscriptionService", "ProgressCallback", "Forgotten"]
