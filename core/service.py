"""TranscriptionService: the one entry point bots, the HTTP API and the CLI call.

cache (platform id, then content hash) -> limits -> fair scheduler -> decode -> engine -> quality pass
-> cache. `transcribe()` answers directly (CLI, HTTP); `submit()` journals the job first and answers
through the platform's Delivery, so accepted work survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import sentences
from .cache import TranscriptCache
from .config import Settings
from .delivery.retry import deliver_with_retries
from .engines.base import Engine
from .errors import Busy, ChatscribeError, DataDirUnavailable, MediaTooLarge, NotReady, SetAside, ShuttingDown
from .jobs.admission import MediaBudget, MediaHold, RateLimiter
from .jobs.journal import CRASH_LIMIT, Delivery, Job, Journal, JournalEntry, ProgressUpdate
from .jobs.runner import LocalRunner, Runner, Work, default_slots
from .keys import TranscriptKey, content_hash, transcript_key
from .media import MediaRequest, check_declared_duration, check_declared_size, probe_duration
from .metrics import Metrics
from .options import TranscribeOptions
from .preferences import Preferences
from .private import private_dir
from .retention import Forgotten
from .transcript import Transcript

if TYPE_CHECKING:
    from .scaleout.limits import SharedLimits  # only with the scaleout extra installed

log = logging.getLogger(__name__)

ProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]
INTERNAL_ERROR = sentences.INTERNAL_ERROR


class Admission:
    """A place taken before the media is read (an HTTP upload): it counts in the queue, the rate limit
    and the media budget from then on. `close()` gives the place back; transcribe() does it when done."""

    def __init__(self, service: TranscriptionService, hold: MediaHold) -> None:
        self._service, self.hold = service, hold
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._service._active -= 1
            self.hold.release()


class TranscriptionService:
    def __init__(self, *, settings: Settings, engine: Engine | None = None, metrics: Metrics | None = None) -> None:
        """`engine` may come later (set_engine) so that the HTTP server can answer probes while it loads."""
        self.settings = settings
        self.metrics = metrics or Metrics()
        data_dir = settings.data_dir
        try:
            private_dir(data_dir)
            self.cache = TranscriptCache(data_dir / "cache.sqlite3",
                                         max_bytes=int(settings.cache_max_mb * 1_000_000), ttl_s=settings.cache_ttl_s)
            self.journal = Journal(data_dir / "jobs.sqlite3", retention_s=settings.job_retention_s)
            self.preferences = Preferences(data_dir / "preferences.sqlite3")
        except OSError as exc:  # read-only file system, no space, no permission: one sentence, no traceback
            raise DataDirUnavailable(data_dir, exc.strerror or str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise DataDirUnavailable(data_dir, str(exc)) from exc
        self._runner: Runner | None = None
        if engine is not None:
            self.set_engine(engine)
        self._deliveries: dict[str, Delivery] = {}
        self._inflight: dict[TranscriptKey, asyncio.Future[Transcript]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        rate = settings.rate_per_s
        self._rate = RateLimiter(*rate) if rate else None
        self._budget = MediaBudget(settings.media_memory_bytes)
        self._closing = False
        self._shared: SharedLimits | None = None
        self._active = 0
        """Accepted and not yet answered (downloading, waiting, running or delivering)."""

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
                                    batch_window_s=self.settings.batch_window_ms / 1000))

    def set_runner(self, runner: Runner) -> None:
        self._runner = runner

    def share(self, *, cache: TranscriptCache, limits: SharedLimits) -> None:
        """Scale-out: a cache and busy/rate limits shared with other front ends (core/scaleout/shared_cache.py, limits.py)."""
        self.cache.close()
        self.cache = cache
        self._shared = limits

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
        await self._admit_shared(platform, user_id, size_bytes)
        self._active += 1
        return Admission(self, self._budget.reserve(size_bytes))

    async def transcribe(
        self, request: MediaRequest, options: TranscribeOptions | None = None, *,
        progress: ProgressCallback | None = None, admission: Admission | None = None,
    ) -> Transcript:
        """Transcribe now and return the result; raises ChatscribeError for anything a user can fix.

        `admission`: the place taken with admit() before the media was read; taken here when None."""
        if admission is None:
            admission = await self.admit(platform=request.platform, user_id=request.user_id,
                                         size_bytes=request.size_bytes or 0)
        started = time.monotonic()
        try:
            transcript = await self._run(_counted(request, admission.hold), options or TranscribeOptions(),
                                         progress)
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
        check_declared_size(request.size_bytes, self.max_file_bytes)
        check_declared_duration(request.duration_hint_s, self.max_duration_s)
        await self._admit_shared(request.platform, request.user_id, request.size_bytes or 0)
        job = await asyncio.to_thread(self.journal.add, request, options or TranscribeOptions())
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
        self._active += 1
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._active -= 1
        self._tasks.discard(task)

    def _admit(self, user_id: str, size_bytes: int, *, local_rate: bool = True) -> None:
        if self._closing:
            raise ShuttingDown()
        if self._runner is None:
            raise NotReady()
        others = self._shared.others_active if self._shared else 0
        if self._active + others >= self.settings.queue_max:
            self.metrics.errors.labels("busy").inc()
            raise Busy(max(60.0, self.estimate_wait_s()), reason="Too many recordings are waiting right now")
        if not self._budget.has_room(size_bytes):
            # Media waiting in memory is counted in bytes, not jobs: a few large files fill it as well.
            self.metrics.errors.labels("busy").inc()
            raise Busy(max(60.0, self.estimate_wait_s()), reason="Too many recordings are waiting right now")
        if local_rate:
            self._check_rate(user_id)

    async def _admit_shared(self, platform: str, user_id: str, size_bytes: int) -> None:
        """The local checks, then the rate limit counted across front ends (locally while Redis is down)."""
        self._admit(user_id, size_bytes, local_rate=self._shared is None)
        if self._shared is not None and not await self._shared.check_rate(platform, user_id):
            self._check_rate(user_id)

    def _check_rate(self, user_id: str) -> None:
        if self._rate is None:
            return
        retry_after = self._rate.take(user_id)
        if retry_after is not None:
            self.metrics.errors.labels("rate_limited").inc()
            raise Busy(retry_after, reason="You've sent a lot in a short time")

    @contextlib.asynccontextmanager
    async def _holding(self, request: MediaRequest) -> AsyncIterator[MediaRequest]:
        """Accepted work waits for room in the media budget before it downloads, and holds it until done."""
        hold = await self._budget.acquire(request.size_bytes or 0)
        try:
            yield _counted(request, hold)
        finally:
            hold.release()

    def _key(self, options: TranscribeOptions, media_hash: str) -> TranscriptKey:
        return transcript_key(self.runner.model_id, options, media_hash)

    async def _process(self, job: Job, delivery: Delivery, *, alone: bool = False) -> None:
        started = time.monotonic()
        outcome: Transcript | ChatscribeError
        try:
            await asyncio.to_thread(self.journal.set_state, job.id, "running")

            def on_progress(update: ProgressUpdate) -> Awaitable[None]:
                return delivery.progress(job, update)

            async with self._holding(job.request) as request:
                outcome = await self._run(request, job.options, on_progress, job_id=job.id, alone=alone)
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
            self.journal.exposed(job.id, False)
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
        elif entry.crashes >= CRASH_LIMIT:
            log.error("job=%s set aside: the process died %d times while reading or transcribing it",
                      entry.job.id, entry.crashes)
            await self._conclude(entry.job, SetAside(entry.crashes), delivery)
        else:
            # A job that was being worked on when the process died runs alone: were it to bring the
            # process down again, no other note of its batch shares the blame.
            await self._process(entry.job, delivery, alone=entry.crashes > 0)

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
        job_id: str | None = None, alone: bool = False,
    ) -> Transcript:
        """`job_id`: the journaled job, marked exposed while its media is read or transcribed."""
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
        if key in self._inflight:  # the same media is already being transcribed: share its result
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            transcript = await self._transcribe_now(request, data, options, progress, job_id, alone)
            await asyncio.to_thread(self.cache.put, key, transcript)
            future.set_result(transcript)
            return transcript
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, ChatscribeError) else ShuttingDown())
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._inflight[key]

    async def _transcribe_now(
        self, request: MediaRequest, data: bytes, options: TranscribeOptions, progress: ProgressCallback | None,
        job_id: str | None, alone: bool,
    ) -> Transcript:
        def expose(exposed: bool) -> None:  # in a worker thread, before and after the media is touched
            if job_id is not None:
                self.journal.exposed(job_id, exposed)

        def probe() -> float | None:
            expose(True)
            try:
                return probe_duration(data)
            finally:  # not reached when probing kills the process: that crash counts against this job
                expose(False)

        duration = await asyncio.to_thread(probe)
        check_declared_duration(duration, self.max_duration_s)
        work = Work(request.chat_id, data, duration or request.duration_hint_s or 30.0, options,
                    on_start=lambda: expose(True), alone=alone)

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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("progress update failed: %s", task.exception())


def _counted(request: MediaRequest, hold: MediaHold) -> MediaRequest:
    """The request whose download resizes `hold` to the bytes it really brought."""
    fetch = request.fetch

    async def fetch_counted(max_bytes: int) -> bytes:
        data = await fetch(max_bytes)
        hold.resize(len(data))
        return data

    return dataclasses.replace(request, fetch=fetch_counted)


__all__ = ["TranscriptionService", "ProgressCallback", "Forgotten"]
