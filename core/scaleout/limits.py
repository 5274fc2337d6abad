"""Busy answers and rate limits counted across every front end on the same Redis.

The queue cap adds the other front ends' open jobs (published by each front end's poll loop) to this
one's; the rate limit is one sorted set per person (schema.rate). If Redis is down each front end counts
alone.
"""

from __future__ import annotations

import contextlib
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import Busy
from ..sentences import RATE_LIMITED
from . import schema
from .presence import FrontendInfo, frontend_record, parse_frontends

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
            wait = await self._script(keys=[schema.rate(platform, user_id)],
                                      args=[now, window, count, f"{now}:{self._id}"])
        except RedisError:
            return False
        if wait:
            raise Busy(float(wait), reason=RATE_LIMITED)
        return True

    async def publish_active(self, active: int) -> None:
        """Tell the other front ends how many jobs this one holds; learn theirs."""
        now = time.time()
        await self._redis.hset(schema.FRONTENDS, self._id, frontend_record(FrontendInfo(active, now)))
        others = parse_frontends(await self._redis.hgetall(schema.FRONTENDS), now)
        self.others_active = sum(info.active for name, info in others.items() if name != self._id)

    async def forget(self) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hdel(schema.FRONTENDS, self._id)
