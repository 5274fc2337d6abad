"""Scale-out: the front end's Runner publishes work to transcription workers through Redis.

Built on taskiq and taskiq-redis's Redis Streams broker (core/scaleout/broker.py): acknowledged only after
the outcome is saved, taken over from dead workers with XAUTOCLAIM after the visibility timeout.

The front end keeps the fair scheduler: it publishes only as many jobs as the workers it sees can hold,
in fair order across chats, so one chat's burst never fills the stream ahead of others. Media bytes and
outcomes travel through Redis keys (core/scaleout/schema.py); the stream carries only small messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from taskiq.message import TaskiqMessage

from ..codecs import encode_options, loads_failure
from ..config import Settings
from ..errors import ChatscribeError, ShuttingDown
from ..i18n import Sentence
from ..jobs.journal import ProgressUpdate
from ..jobs.runner import Notify, Work
from ..jobs.scheduler import FairScheduler
from ..jobs.speed import SpeedEstimate
from ..keys import TranscriptKey, content_hash, transcript_key
from ..transcript import Transcript
from . import schema
from .broker import StreamBroker
from .connection import UNREACHABLE, async_client, describe_url, sync_client
from .limits import SharedLimits
from .presence import WorkerInfo, parse_workers
from .shared_cache import SharedCache, shared_transcript

log = logging.getLogger(__name__)

TASK_NAME = "chatscribe.transcribe"
DELAYED = Sentence("Answers are delayed right now: transcription is temporarily unavailable. "
                   "Yours will arrive as soon as it is back.")
_FAILURES = (*UNREACHABLE, RedisError)


# Media and message in one step: the media key exists exactly while a message for it is outstanding, so
# a front end that finds it missing (first time, Redis restarted empty) knows it must publish again.
_PUBLISH = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[3])
    return 1
end
return 0
"""


class ElasticScheduler(FairScheduler):
    """The fair scheduler whose slot count follows the capacity of the workers seen."""

    def resize(self, slots: int) -> None:
        slots = max(1, slots)
        if slots != self.slots:
            self.slots = slots
            self._dispatch()


@dataclass(eq=False)
class _Published:
    """A job this front end waits on, by key: requests for the same content share it."""

    key: TranscriptKey
    work: Work
    future: asyncio.Future[Transcript]
    listeners: list[Notify] = field(default_factory=list)
    waiters: int = 0
    published: float | None = None
    checked: float = 0.0
    told_delayed: bool = False


class RedisRunner:
    """A Runner whose work is done by `chatscribe worker` processes; see the module docstring."""

    def __init__(self, settings: Settings, *, poll_s: float = 1.0) -> None:
        url = settings.broker_url.get_secret_value()
        self.where = describe_url(url)
        self.model_id = schema.shared_model_id(settings)
        self.frontend_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.redis = async_client(url)
        self.broker = StreamBroker(url, visibility_s=settings.visibility_timeout_s)
        self._publish = self.redis.register_script(_PUBLISH)
        self.limits = SharedLimits(self.redis, frontend_id=self.frontend_id, rate=settings.rate_per_s)
        self.scheduler = ElasticScheduler(1)
        self.speed = SpeedEstimate()
        self.poll_s = poll_s
        self.claim_ttl_s = max(10, int(poll_s * 10))
        self.workers: list[WorkerInfo] = []
        self.online: bool | None = None
        """None until the first contact with Redis."""
        self.in_flight = 0
        self._pending: dict[TranscriptKey, _Published] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    # -- Runner ----------------------------------------------------------------------------------

    def backlog(self) -> tuple[int, float]:
        published = [p.work.duration_s for p in self._pending.values()]
        return self.scheduler.waiting + len(published), self.scheduler.waiting_audio_s() + sum(published)

    def estimate_wait_s(self) -> float:
        waiting, audio_s = self.backlog()
        return self.speed.seconds_for(audio_s, waiting) / self.scheduler.slots

    def close(self) -> None:
        self._closed = True
        self.scheduler.close()

    async def run(self, work: Work, notify: Notify | None = None) -> Transcript:
        if self._closed:
            raise ShuttingDown()
        self.start()
        key = transcript_key(self.model_id, work.options, await asyncio.to_thread(content_hash, work.data))

        def on_position(position: int) -> None:
            assert notify is not None
            notify(ProgressUpdate("queued", position=position, eta_s=self.estimate_wait_s(),
                                  detail=None if self._flowing() else DELAYED))

        self.in_flight += 1
        pending = None
        try:
            async with self.scheduler.turn(work.chat_id, work.duration_s, on_position if notify else None):
                pending = self._pending.get(key)
                if pending is None:
                    pending = _Published(key, work, asyncio.get_running_loop().create_future())
                    self._pending[key] = pending
                pending.waiters += 1
                if notify:
                    pending.listeners.append(notify)
                if not await self._try_ensure(pending) or not self._flowing():
                    self._tell_delayed()
                return await asyncio.shield(pending.future)
        finally:
            self.in_flight -= 1
            if pending is not None:
                pending.waiters -= 1
                if notify in pending.listeners:
                    pending.listeners.remove(notify)
                if not pending.waiters and not pending.future.done():
                    self._pending.pop(key, None)  # abandoned (shutdown): its Redis keys expire by themselves

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def aclose(self) -> None:
        self.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.limits.forget()
        with contextlib.suppress(Exception):
            await self.broker.shutdown()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # -- internals -------------------------------------------------------------------------------

    def _flowing(self) -> bool:
        """False while Redis is unreachable or no worker has been seen: answers are delayed."""
        return self.online is not False and (self.online is None or bool(self.workers))

    async def _watch(self) -> None:
        pause = 0.5
        while not self._closed:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(schema.EVENTS)
                    if self.online is False:
                        log.info("Redis at %s answers again: publishing waiting jobs", self.where)
                    self.online, pause = True, 0.5
                    next_poll, force = 0.0, True  # after (re)connecting, check every job at once
                    while not self._closed:
                        if time.monotonic() >= next_poll:
                            await self._poll(force)
                            next_poll, force = time.monotonic() + self.poll_s, False
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll_s)
                        if message is not None:
                            await self._on_event(message["data"])
            except _FAILURES as exc:
                self._went_offline(exc)
                await asyncio.sleep(pause)  # back-off before reconnecting
                pause = min(pause * 2, 5.0)
            except Exception:  # this task must outlive anything: every published job waits on it
                log.exception("watching Redis at %s failed; starting over", self.where)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _poll(self, force: bool = False) -> None:
        was_flowing = self._flowing()
        self.workers = parse_workers(await self.redis.hgetall(schema.WORKERS))
        self.scheduler.resize(sum(w.slots for w in self.workers))
        await self.limits.publish_active(self.in_flight)
        # Outcomes normally arrive as events; this re-check catches a missed one and keeps claims and
        # media alive, so once every few seconds per job is enough (the claim lives ten polls).
        due = time.monotonic() - self.claim_ttl_s / 3
        for pending in list(self._pending.values()):
            if force or pending.checked <= due:
                await self._ensure(pending)
        if self._flowing():
            for pending in self._pending.values():
                pending.told_delayed = False  # a later stall is announced again
            return
        if was_flowing:
            log.warning("no transcription worker seen on %s: jobs wait until one starts", self.where)
        self._tell_delayed()

    def _tell_delayed(self) -> None:
        """Each waiting job's sender hears once per stall that the answer is delayed."""
        for pending in self._pending.values():
            if not pending.told_delayed:
                pending.told_delayed = True
                _tell(pending, ProgressUpdate("queued", detail=DELAYED))

    async def _on_event(self, data: bytes) -> None:
        event, key = schema.parse_event(data)
        pending = self._pending.get(key)
        if pending is None:
            return
        if event == "started":
            eta = self.speed.seconds_for(pending.work.duration_s, 1)
            _tell(pending, ProgressUpdate("transcribing", fraction=0.0, eta_s=eta))
        else:
            await self._ensure(pending)

    async def _try_ensure(self, pending: _Published) -> bool:
        try:
            await self._ensure(pending)
        except _FAILURES as exc:
            self._went_offline(exc)
            return False
        return True

    async def _ensure(self, pending: _Published) -> None:
        """Resolve from a saved outcome, or make sure exactly one front end has this work published."""
        key, conn = pending.key, self.redis
        pending.checked = time.monotonic()
        body, failure = await conn.mget(schema.job("transcript", key), schema.job("error", key))
        if body is not None:
            self._resolve(pending, shared_transcript(body))
            return
        if failure is not None:
            self._resolve(pending, loads_failure(failure))
            return
        claim = schema.job("claim", key)
        if not await conn.set(claim, self.frontend_id, nx=True, ex=self.claim_ttl_s):
            if await conn.get(claim) != self.frontend_id.encode():
                return  # another front end publishes this content; its result answers us too
            await conn.expire(claim, self.claim_ttl_s)
        # Media present: a message for it is outstanding (see _PUBLISH); only refresh its lifetime.
        if await conn.expire(schema.job("media", key), schema.MEDIA_TTL_S):
            return
        published = await self._publish(keys=[schema.job("media", key), schema.STREAM],
                                        args=[pending.work.data, schema.MEDIA_TTL_S, self._message(pending)])
        if published:
            pending.published = time.monotonic()
            log.debug("published %s", key)

    def _message(self, pending: _Published) -> bytes:
        """A taskiq message for the workers' receiver, formatted by the broker as `kiq()` would."""
        work = pending.work
        message = TaskiqMessage(
            task_id=self.broker.id_generator(), task_name=TASK_NAME, labels={}, labels_types={}, args=[],
            kwargs={"key": str(pending.key), "chat_id": work.chat_id, "duration_s": work.duration_s,
                    "options": encode_options(work.options), "model_id": self.model_id,
                    "conversation": work.conversation},
        )
        return self.broker.formatter.dumps(message).message

    def _resolve(self, pending: _Published, outcome: Transcript | ChatscribeError) -> None:
        self._pending.pop(pending.key, None)
        if pending.future.done():
            return
        if isinstance(outcome, Transcript):
            if pending.published is not None:
                self.speed.observe(pending.work.duration_s, time.monotonic() - pending.published)
            pending.future.set_result(outcome)
        else:
            pending.future.set_exception(outcome)
            pending.future.exception()  # mark retrieved: the waiter may have gone

    def _went_offline(self, exc: BaseException) -> None:
        if self.online is not False:
            log.warning("Redis at %s unreachable (%s): accepting into the journal, answers are delayed",
                        self.where, exc)
        self.online = False
        self._tell_delayed()


def _tell(pending: _Published, update: ProgressUpdate) -> None:
    for listener in list(pending.listeners):
        listener(update)


async def ping(url: str) -> dict[str, Any]:
    """What `chatscribe doctor` shows: reachability, workers, queue depth."""
    conn = async_client(url)
    try:
        await conn.ping()
        workers = parse_workers(await conn.hgetall(schema.WORKERS))
        total = int(await conn.xlen(schema.STREAM)) if await conn.exists(schema.STREAM) else 0
        held = int((await conn.xpending(schema.STREAM, schema.GROUP))["pending"]) if total else 0
        return {"reachable": True, "workers": workers, "waiting": total - held, "running": held,
                "transcribed": int(await conn.get(schema.TRANSCRIBED) or 0)}
    except RedisError as exc:
        return {"reachable": False, "error": str(exc), "workers": []}
    finally:
        await conn.aclose()


def attach(service: Any, settings: Settings) -> RedisRunner:
    """Make `service` a front end: workers transcribe, cache and limits are shared through Redis."""
    runner = RedisRunner(settings)
    cache = SharedCache(settings.data_dir / "cache.sqlite3", max_bytes=int(settings.cache_max_mb * 1_000_000),
                        client=sync_client(settings.broker_url.get_secret_value()), ttl_s=settings.shared_cache_ttl_s,
                        local_ttl_s=settings.cache_ttl_s)
    service.set_runner(runner)
    service.share(cache=cache, limits=runner.limits)
    runner.start()
    return runner


__all__ = ["RedisRunner", "TASK_NAME", "DELAYED", "attach", "ping"]
