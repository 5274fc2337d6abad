"""`chatscribe worker`: a transcription worker taking jobs from front ends through Redis.

Loads the model once, then runs taskiq's receiver on the job stream (core/scaleout/runner.py): it asks for
a message only when it has a free slot, saves the outcome in Redis, and only then acknowledges the
message. A worker that dies mid-job leaves its message pending; another takes it over after the
visibility timeout. Redis outages are waited out: the worker reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from chatscribe.core.config import Settings
from chatscribe.core.errors import ChatscribeError, SetAside
from chatscribe.core.jobs.journal import CRASH_LIMIT, ProgressUpdate
from chatscribe.core.jobs.runner import LocalRunner, Runner, Work, default_slots
from chatscribe.core.metrics import Metrics
from chatscribe.core.scaleout.broker import StreamBroker
from chatscribe.core.scaleout.runner import TASK_NAME, shared_model_id
from chatscribe.core.scaleout.state import (
    ERROR_TTL_S,
    EVENTS,
    PREFIX,
    TRANSCRIBED,
    UNREACHABLE,
    WORKERS,
    async_client,
    describe_url,
    dump_outcome,
    error_key,
    load_options,
    media_key,
    transcript_key,
)
from chatscribe.core.transcript import Transcript

from .engine_loader import load_engine

log = logging.getLogger("chatscribe.worker")

T = TypeVar("T")
INTERNAL_ERROR = "Something went wrong while transcribing that file; please try again later."


class Worker:
    def __init__(self, settings: Settings, runner: Runner, *, slots: int, name: str | None = None) -> None:
        url = settings.broker_url.get_secret_value()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.where = describe_url(url)
        self.runner = runner
        self.slots = slots
        self.model_id = shared_model_id(settings)
        self.ttl_s = settings.shared_cache_ttl_s
        self.grace_s = settings.shutdown_grace_s
        self.heartbeat_s = min(5.0, settings.visibility_timeout_s / 3)
        self.redis = async_client(url)
        self.broker = StreamBroker(url, visibility_s=settings.visibility_timeout_s, consumer_name=self.name)
        self.broker.is_worker_process = True
        self.broker.register_task(self._task(), task_name=TASK_NAME)
        self.busy = 0
        self.done = 0
        self._warned_model = False

    async def serve(self, stop: asyncio.Event) -> None:
        """Take jobs until `stop` is set, then finish running ones within the grace."""
        receiver = Receiver(self.broker, max_async_tasks=self.slots, max_prefetch=0,
                            ack_type=AcknowledgeType.WHEN_EXECUTED, propagate_exceptions=False,
                            wait_tasks_timeout=self.grace_s)
        heartbeat = asyncio.ensure_future(self._heartbeat())
        log.info("worker %s taking jobs from %s (%d at a time, model %s)", self.name, self.where, self.slots,
                 self.model_id)
        try:
            await receiver.listen(stop)
        finally:
            self.broker.acks_frozen = True  # jobs still running past the grace are left to other workers
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await self.redis.hdel(WORKERS, self.name)
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    def _task(self) -> Callable[..., Awaitable[None]]:
        # taskiq renames the function it registers: give it a plain one, not a bound method
        async def transcribe(key: str, chat_id: str, duration_s: float, options: dict[str, Any],
                             model_id: str = "") -> None:
            try:
                await self.transcribe(key, chat_id, duration_s, options, model_id)
            except asyncio.CancelledError:
                # Stopped past the grace: the message stays unacknowledged (acks are frozen by then) and
                # another worker takes it over; ending quietly keeps taskiq from logging a traceback.
                self.broker.acks_frozen = True

        return transcribe

    async def transcribe(self, key: str, chat_id: str, duration_s: float, options: dict[str, Any],
                         model_id: str = "") -> None:
        """The taskiq task: one note, from media in Redis to an outcome in Redis."""
        if model_id != self.model_id and not self._warned_model:
            self._warned_model = True
            log.warning("a front end asks for model %s but this worker runs %s: give both the same "
                        "CHATSCRIBE_MODEL, CHATSCRIBE_BEAM_SIZE and CHATSCRIBE_VAD", model_id, self.model_id)
        if await self._redis(lambda: self.redis.exists(transcript_key(key), error_key(key))):
            await self._redis(lambda: self._announce_done(key))  # a repeat (a takeover after Redis restarted)
            return
        data = await self._redis(lambda: self.redis.get(media_key(key)))
        if data is None:
            log.info("job %s: media gone, skipped (its front end publishes it again if still waiting)", key[-12:])
            return
        attempts = await self._redis(lambda: self._count_attempt(key))
        outcome: Transcript | ChatscribeError
        if attempts > CRASH_LIMIT:
            log.error("job %s set aside: it stopped %d workers before finishing", key[-12:], attempts - 1)
            outcome = SetAside(attempts - 1)
        else:
            # A job taken over from a worker that died runs alone: no other note shares the blame.
            work = Work(chat_id, data, duration_s, load_options(options), unbatched=attempts > 1)
            outcome = await self._run(key, work)
        await self._redis(lambda: self._save(key, outcome, ran=attempts <= CRASH_LIMIT))
        self.done += 1

    async def _run(self, key: str, work: Work) -> Transcript | ChatscribeError:
        self.busy += 1
        started = time.monotonic()
        announced: list[asyncio.Task[Any]] = []

        def on_progress(update: ProgressUpdate) -> None:
            # The front end says "transcribing" when the engine starts, not while this worker holds it waiting.
            if update.stage == "transcribing" and not announced:
                announced.append(asyncio.ensure_future(self._announce_started(key)))

        try:
            transcript = await self.runner.run(work, on_progress)
        except ChatscribeError as exc:
            return exc
        except Exception:
            log.exception("transcription failed unexpectedly")
            return ChatscribeError(INTERNAL_ERROR)
        finally:
            self.busy -= 1
        log.info("transcribed %.1f s of audio in %.1f s", transcript.duration_s, time.monotonic() - started)
        return transcript

    async def _count_attempt(self, key: str) -> int:
        name = f"{PREFIX}attempts:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 86400)
            count, _ = await pipe.execute()
        return int(count)

    async def _save(self, key: str, outcome: Transcript | ChatscribeError, *, ran: bool) -> None:
        """Outcome, then cleanup and the announcement, in one transaction: a front end sees all or nothing."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if isinstance(outcome, Transcript):
                pipe.set(transcript_key(key), dump_outcome(outcome), ex=self.ttl_s)
            else:
                pipe.set(error_key(key), dump_outcome(outcome), ex=ERROR_TTL_S)
            pipe.delete(media_key(key), f"{PREFIX}attempts:{key}")
            if ran:
                pipe.incr(TRANSCRIBED)
            pipe.publish(EVENTS, f"done {key}")
            await pipe.execute()

    async def _announce_started(self, key: str) -> None:
        with contextlib.suppress(*UNREACHABLE):  # progress is best effort
            await self.redis.publish(EVENTS, f"started {key}")

    async def _announce_done(self, key: str) -> None:
        await self.redis.delete(media_key(key))
        await self.redis.publish(EVENTS, f"done {key}")

    async def _redis(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry through a Redis outage: a finished transcript is never thrown away for it."""
        pause, warned = 0.5, False
        while True:
            try:
                return await call()
            except UNREACHABLE as exc:
                if not warned:
                    log.warning("Redis at %s unreachable (%s): holding the job until it answers", self.where, exc)
                    warned = True
                await asyncio.sleep(pause)  # back-off before retrying
                pause = min(pause * 2, 5.0)

    async def _heartbeat(self) -> None:
        """Tell front ends this worker is alive and renew the hold on jobs in progress."""
        while True:
            info = {"model_id": self.model_id, "slots": self.slots, "busy": self.busy, "done": self.done,
                    "seen": time.time(), "pid": os.getpid()}
            try:
                await self.redis.hset(WORKERS, self.name, json.dumps(info))
                await self.broker.renew()
            except UNREACHABLE:
                pass  # the job listener reports the outage
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc)
            await asyncio.sleep(self.heartbeat_s)  # the heartbeat period


def build_runner(settings: Settings) -> tuple[LocalRunner, int]:
    """The one model of this process, and how many jobs it holds at once. Slow: run it off the loop.

    Holding slots x batch size lets short notes waiting together go through the engine as one batch
    (core/engines/batching.py); the runner's fair scheduler orders what this worker holds.
    """
    engine = load_engine(settings)
    slots = settings.workers or default_slots(engine)
    log.info("model %s ready on %s (%s)", settings.model, engine.device.device, engine.device.compute_type)
    runner = LocalRunner(engine, slots=slots, max_duration_s=settings.max_duration_s, metrics=Metrics(),
                         batch_window_s=settings.batch_window_ms / 1000)
    return runner, slots * runner.scheduler.max_batch


async def run_worker(settings: Settings) -> int:
    if not settings.broker_url.get_secret_value():
        log.error("CHATSCRIBE_BROKER_URL is not set: a worker takes jobs from Redis, e.g. redis://localhost:6379/0")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    load = asyncio.ensure_future(asyncio.to_thread(build_runner, settings))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not load.done():
        load.cancel()
        return 0
    runner, slots = load.result()
    await Worker(settings, runner, slots=slots).serve(stop)
    log.info("worker stopped")
    if any(t.name.startswith("chatscribe-") and t.is_alive() for t in threading.enumerate()):
        # A transcription outlived the grace: the model's thread cannot be interrupted, and letting the
        # interpreter finalize under it aborts the process. Its job is still pending for another worker.
        logging.shutdown()
        os._exit(0)
    return 0
