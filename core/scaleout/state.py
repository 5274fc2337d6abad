"""What front ends and transcription workers share through Redis when CHATSCRIBE_BROKER_URL is set.

Keys (all under `chatscribe:`), with `key` = "<model id>:<options digest>:<content sha256>":
  media:<key>    the bytes to transcribe, while a task for them is outstanding (TTL, refreshed by the front end)
  claim:<key>    which front end publishes that content (so two front ends never publish it twice)
  t:<key>        the transcript: the shared cache, written by the worker, read by every front end
  err:<key>      a failure's code and sentence, kept briefly
  alias:<platform>:<chat>:<file id>   content hash of a conversation's platform file, answered without download
  workers        hash: worker name -> JSON (model, slots, last seen); `chatscribe doctor` lists them
  frontends      hash: front end id -> JSON (jobs accepted and unanswered, last seen): the shared queue cap
  rate:<user>    sorted set of recent submissions: the per-person rate limit across front ends
  transcribed    counter of engine runs by all workers
  events         pub/sub channel: "<started|done> <key>", a fast path; front ends also poll, so none is lost
The work itself travels as taskiq messages on the `chatscribe:jobs` stream (core/scaleout/runner.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..cache import NO_CHAT, TranscriptCache, decode_transcript, encode_transcript
from ..errors import Busy, ChatscribeError
from ..jobs.journal import JobFailed
from ..options import TranscribeOptions
from ..transcript import Transcript

log = logging.getLogger(__name__)

PREFIX = "chatscribe:"
STREAM = PREFIX + "jobs"
GROUP = "workers"
EVENTS = PREFIX + "events"
WORKERS = PREFIX + "workers"
FRONTENDS = PREFIX + "frontends"
TRANSCRIBED = PREFIX + "transcribed"
"""Counter of engine runs by all workers (cache misses), for `doctor` and benchmarks."""
MEDIA_TTL_S = 3600
ERROR_TTL_S = 600
SEEN_TTL_S = 15.0
"""A worker or front end not heard from for this long is counted as gone."""
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis is down or restarting: callers wait and retry, never fail a job for it."""


def media_key(key: str) -> str:
    return f"{PREFIX}media:{key}"


def claim_key(key: str) -> str:
    return f"{PREFIX}claim:{key}"


def transcript_key(key: str) -> str:
    return f"{PREFIX}t:{key}"


def error_key(key: str) -> str:
    return f"{PREFIX}err:{key}"


def job_key(variant: str, content_hash: str) -> str:
    return f"{variant}:{content_hash}"


def dump_outcome(outcome: Transcript | ChatscribeError) -> bytes:
    if isinstance(outcome, Transcript):
        return json.dumps(encode_transcript(outcome), ensure_ascii=False).encode()
    return json.dumps({"code": outcome.code, "message": outcome.user_message}).encode()


def load_transcript(body: bytes | str) -> Transcript:
    return dataclasses.replace(decode_transcript(json.loads(body)), from_cache=True)


def load_error(body: bytes | str) -> ChatscribeError:
    data = json.loads(body)
    return JobFailed(data["code"], data["message"])


def dump_options(options: TranscribeOptions) -> dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def load_options(data: Mapping[str, Any]) -> TranscribeOptions:
    values = dict(data)
    values["expected_languages"] = tuple(values.get("expected_languages") or ())
    return TranscribeOptions(**values)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    model_id: str
    slots: int
    busy: int
    done: int
    seen: float
    """Wall-clock time of the worker's last heartbeat."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_workers(raw: Mapping[Any, Any], now: float | None = None) -> list[WorkerInfo]:
    """The workers heard from recently, from the `workers` hash."""
    now = time.time() if now is None else now
    alive = []
    for name, body in raw.items():
        data = json.loads(body)
        info = WorkerInfo(_text(name), data["model_id"], int(data["slots"]), int(data.get("busy", 0)),
                          int(data.get("done", 0)), float(data["seen"]))
        if now - info.seen <= SEEN_TTL_S:
            alive.append(info)
    return sorted(alive, key=lambda w: w.name)


def describe_url(url: str) -> str:
    """The broker address for logs and `doctor`, without a password."""
    parsed = urlsplit(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.hostname or ''}{port}{parsed.path or '/0'}"


def sync_client(url: str) -> redis.Redis:
    """For code that runs in threads (the shared cache); short timeouts so an outage costs little."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)


def async_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=5)


class SharedCache(TranscriptCache):
    """The local SQLite cache with Redis behind it: a transcript made anywhere answers everywhere.

    Every Redis failure falls back to the local cache (logged once per outage): an outage makes answers
    slower, never wrong.
    """

    def __init__(self, path: Path, *, max_bytes: int, client: redis.Redis, ttl_s: int,
                 local_ttl_s: float | None = None) -> None:
        """`ttl_s`: the shared copies' lifetime in Redis; `local_ttl_s`: the local cache's (CHATSCRIBE_CACHE_TTL_H)."""
        super().__init__(path, max_bytes=max_bytes, ttl_s=local_ttl_s)
        self._redis = client
        self._ttl_s = ttl_s
        self._down = False
        self._retry_at = 0.0

    def get(self, content_hash: str, variant: str) -> Transcript | None:
        local = super().get(content_hash, variant)
        if local is not None:
            return local
        body = self._call(self._redis.get, transcript_key(job_key(variant, content_hash)))
        if not body:
            return None
        transcript = load_transcript(body)
        super().put(content_hash, variant, transcript)
        return transcript

    def put(self, content_hash: str, variant: str, transcript: Transcript) -> None:
        super().put(content_hash, variant, transcript)
        if not transcript.from_cache:
            self._call(self._redis.set, transcript_key(job_key(variant, content_hash)), dump_outcome(transcript),
                       ex=self._ttl_s)

    def hash_for(self, platform: str, file_id: str, chat_id: str = NO_CHAT) -> str | None:
        local = super().hash_for(platform, file_id, chat_id)
        if local is not None:
            return local
        remote = self._call(self._redis.get, _alias_key(platform, chat_id, file_id))
        return remote.decode() if remote else None

    def alias(self, platform: str, file_id: str | None, content_hash: str, chat_id: str = NO_CHAT) -> None:
        super().alias(platform, file_id, content_hash, chat_id)
        if file_id:
            self._call(self._redis.set, _alias_key(platform, chat_id, file_id), content_hash, ex=self._ttl_s)

    def forget(self, platform: str, chat_id: str) -> int:
        """Also drops the conversation's shared file id links this front end made. The shared transcripts
        themselves expire with CHATSCRIBE_SHARED_CACHE_TTL_S: another front end's conversations may own them."""
        with self._lock:
            file_ids = [row[0] for row in self._db.execute(
                "SELECT file_id FROM links WHERE platform=? AND chat_id=? AND file_id!=''", (platform, chat_id))]
        count = super().forget(platform, chat_id)
        for file_id in file_ids:
            self._call(self._redis.delete, _alias_key(platform, chat_id, file_id))
        return count

    def close(self) -> None:
        super().close()
        self._redis.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if self._down and time.monotonic() < self._retry_at:
            return None  # while Redis is down, ask it again only every few seconds: each try may wait a timeout
        try:
            result = method(*args, **kwargs)
        except RedisError as exc:
            if not self._down:
                log.warning("shared cache unreachable (%s): using the local cache until Redis answers", exc)
            self._down, self._retry_at = True, time.monotonic() + 5.0
            return None
        self._down = False
        return result


def _alias_key(platform: str, chat_id: str, file_id: str) -> str:
    return f"{PREFIX}alias:{platform}:{chat_id}:{file_id}"


# Sliding window per person: drop old entries, count, admit or say when the oldest one leaves the window.
_RATE_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return ''
"""


class SharedLimits:
    """Busy answers and rate limits counted across every front end on the same Redis.

    The queue cap adds the other front ends' open jobs (published by each front end's poll loop) to this
    one's; the rate limit is one sorted set per person. If Redis is down each front end counts alone.
    """

    def __init__(self, client: aioredis.Redis, *, frontend_id: str, rate: tuple[int, float] | None) -> None:
        self._redis = client
        self._id = frontend_id
        self._rate = rate
        self._script = client.register_script(_RATE_SCRIPT)
        self.others_active = 0
        """Jobs the other front ends hold, as of the last poll."""

    async def check_rate(self, platform: str, user_id: str) -> bool:
        """Raise Busy when the person is over the limit; False when Redis could not be asked."""
        if self._rate is None:
            return True
        count, window = self._rate
        now = time.time()
        try:
            wait = await self._script(keys=[f"{PREFIX}rate:{platform}:{user_id}"],
                                      args=[now, window, count, f"{now}:{self._id}"])
        except RedisError:
            return False
        if wait:
            raise Busy(float(wait), reason="You've sent a lot in a short time")
        return True

    async def publish_active(self, active: int) -> None:
        """Tell the other front ends how many jobs this one holds; learn theirs."""
        now = time.time()
        await self._redis.hset(FRONTENDS, self._id, json.dumps({"active": active, "seen": now}))
        total = 0
        for name, body in (await self._redis.hgetall(FRONTENDS)).items():
            data = json.loads(body)
            if _text(name) != self._id and now - float(data["seen"]) <= SEEN_TTL_S:
                total += int(data["active"])
        self.others_active = total

    async def forget(self) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hdel(FRONTENDS, self._id)
