"""A transcription worker's steps: one job from the `chatscribe:jobs` stream to an outcome in Redis.

taskiq's receiver asks for a message only when the worker has a free slot (broker.py); the worker reads
the media from Redis, runs it on its local Runner, saves the outcome, and only then acknowledges the
message. A worker that dies mid-job leaves its message pending; another takes it over after the
visibility timeout, and a job that has stopped CRASH_LIMIT workers is set aside. Redis outages are
waited out. The process around it (settings, model, signals) is bots/worker.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from .. import sentences
from ..codecs import Outcome, decode_options, dumps_outcome
from ..config import Settings
from ..errors import ChatscribeError
from ..jobs.crashes import CRASH_LIMIT, run_unbatched, set_aside
from ..jobs.journal import ProgressUpdate
from ..jobs.runner import Runner, Work
from ..keys import TranscriptKey
from ..transcript import Transcript
from . import schema
from .broker import StreamBroker
from .connection import UNREACHABLE, async_client, describe_url
from .presence import WorkerInfo, worker_record
from .runner import TASK_NAME

log = logging.getLogger("chatscribe.worker")

T = TypeVar("T")


class Worker:
    """Takes jobs from the stream for one local Runner, `slots` at a time; see the module docstring."""

    def __init__(self, settings: Settings, runner: Runner, *, slots: int, name: str | None = None) -> None:
        url = settings.broker_url.get_secret_value()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.where = describe_url(url)
        self.runner = runner
        self.slots = slots
        self.model_id = schema.shared_model_id(settings)
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
                await self.redis.hdel(schema.WORKERS, self.name)
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    def _task(self) -> Callable[..., Awaitable[None]]:
        # taskiq renames the function it registers: give it a plain one, not a bound method
        async def transcribe(key: str, chat_id: str, duration_s: float, options: dict[str, Any],
                             model_id: str = "", conversation: str | None = None) -> None:
            # The message's keyword names are the front end's (RedisRunner._message): keep them. A front
            # end of an older release sends no conversation: its notes then pack with no other note.
            try:
                await self.transcribe(key, chat_id, duration_s, options, model_id, conversation)
            except asyncio.CancelledError:
                # Stopped past the grace: the message stays unacknowledged (acks are frozen by then) and
                # another worker takes it over; ending quietly keeps taskiq from logging a traceback.
                self.broker.acks_frozen = True

        return transcribe

    async def transcribe(self, text_key: str, chat_id: str, duration_s: float, options: dict[str, Any],
                         model_id: str = "", conversation: str | None = None) -> None:
        """The taskiq task: one note, from media in Redis to an outcome in Redis."""
        key = TranscriptKey.parse(text_key)
        if model_id != self.model_id and not self._warned_model:
            self._warned_model = True
            log.warning("a front end asks for model %s but this worker runs %s: give both the same "
                        "CHATSCRIBE_MODEL, CHATSCRIBE_BEAM_SIZE and CHATSCRIBE_VAD", model_id, self.model_id)
        if await self._redis(lambda: self.redis.exists(schema.job("transcript", key), schema.job("error", key))):
            await self._redis(lambda: self._announce_done(key))  # a repeat (a takeover after Redis restarted)
            return
        data = await self._redis(lambda: self.redis.get(schema.job("media", key)))
        if not isinstance(data, bytes):  # None; never text, as the client does not decode
            log.info("job %s: media gone, skipped (its front end publishes it again if still waiting)", _short(key))
            return
        attempts = await self._redis(lambda: self._count_attempt(key))
        outcome: Outcome
        crashes = attempts - 1  # every attempt before this one ended with its worker's death
        if (aside := set_aside(crashes)) is not None:
            log.error("job %s set aside: it stopped %d workers before finishing", _short(key), crashes)
            outcome = aside
        else:
            # The conversation keeps notes of different chats out of one packed window (LocalRunner.batch_key).
            work = Work(chat_id, data, duration_s, decode_options(options), unbatched=run_unbatched(crashes),
                        conversation=conversation)
            outcome = await self._run(key, work)
        await self._redis(lambda: self._save(key, outcome, ran=attempts <= CRASH_LIMIT))
        self.done += 1

    async def _run(self, key: TranscriptKey, work: Work) -> Outcome:
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
            return ChatscribeError(sentences.INTERNAL_ERROR)
        finally:
            self.busy -= 1
        log.info("transcribed %.1f s of audio in %.1f s", transcript.duration_s, time.monotonic() - started)
        return transcript

    async def _count_attempt(self, key: TranscriptKey) -> int:
        name = schema.job("attempts", key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, schema.ATTEMPTS_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    async def _save(self, key: TranscriptKey, outcome: Outcome, *, ran: bool) -> None:
        """Outcome, then cleanup and the announcement, in one transaction: a front end sees all or nothing."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if isinstance(outcome, Transcript):
                pipe.set(schema.job("transcript", key), dumps_outcome(outcome), ex=self.ttl_s)
            else:
                pipe.set(schema.job("error", key), dumps_outcome(outcome), ex=schema.ERROR_TTL_S)
            pipe.delete(schema.job("media", key), schema.job("attempts", key))
            if ran:
                pipe.incr(schema.TRANSCRIBED)
            pipe.publish(schema.EVENTS, schema.event("done", key))
            await pipe.execute()

    async def _announce_started(self, key: TranscriptKey) -> None:
        with contextlib.suppress(*UNREACHABLE):  # progress is best effort
            await self.redis.publish(schema.EVENTS, schema.event("started", key))

    async def _announce_done(self, key: TranscriptKey) -> None:
        await self.redis.delete(schema.job("media", key))
        await self.redis.publish(schema.EVENTS, schema.event("done", key))

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
            info = WorkerInfo(self.name, self.model_id, self.slots, self.busy, self.done, time.time())
            try:
                await self.redis.hset(schema.WORKERS, self.name, worker_record(info, os.getpid()))
                await self.broker.renew()
            except UNREACHABLE:
                pass  # the job listener reports the outage
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc)
            await asyncio.sleep(self.heartbeat_s)  # the heartbeat period


def _short(key: TranscriptKey) -> str:
    """Enough of the content hash to tell jobs apart in the log."""
    return key.content_hash[-12:]
