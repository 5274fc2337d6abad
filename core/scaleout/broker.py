"""taskiq-redis's Redis Streams broker, made to outlive Redis outages and worker deaths.

One consumer group of workers reads the `chatscribe:jobs` stream. A worker acknowledges a message only
after it saved the outcome; a message held by a worker that went silent (SIGKILL, lost machine) is taken
over by another with XAUTOCLAIM after the visibility timeout, while live workers renew their hold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from taskiq import AckableMessage
from taskiq.abc.broker import AsyncBroker
from taskiq_redis import RedisStreamBroker

from .connection import UNREACHABLE
from .schema import GROUP, STREAM

log = logging.getLogger(__name__)


class StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, made to outlive Redis outages and restarts.

    Reads one message at a time (taskiq's receiver asks only when it has a free slot, so a busy worker
    never hoards work another could start), takes over silent workers' messages before reading new
    ones, re-declares the consumer group when Redis comes back empty, and deletes a message once
    acknowledged so the stream's length is the queue depth.
    """

    def __init__(self, url: str, *, visibility_s: float, consumer_name: str | None = None,
                 block_ms: int = 1000) -> None:
        super().__init__(
            url, queue_name=STREAM, consumer_group_name=GROUP, consumer_name=consumer_name, consumer_id="0",
            xread_block=block_ms, idle_timeout=int(visibility_s * 1000), xread_count=1,
            socket_connect_timeout=2, socket_timeout=block_ms / 1000 + 10, health_check_interval=5,
        )
        self.visibility_s = visibility_s
        self.held: set[bytes] = set()
        """Messages this worker is working on: their hold is renewed until they are acknowledged."""
        self.acks_frozen = False
        """Set when shutting down: work cut short must stay pending, for another worker to take over."""

    async def startup(self) -> None:
        # The group is declared when listening, and again whenever Redis lost it: a worker may start first.
        await AsyncBroker.startup(self)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        pause, down = 0.5, False
        while True:
            try:
                async with Redis(connection_pool=self.connection_pool) as conn:
                    await declare_group(conn)
                    if down:
                        log.info("Redis at %s answers again: taking jobs", self._where())
                    pause, down = 0.5, False
                    while True:
                        entry = await self._next(conn)
                        if entry is not None:
                            msg_id, data = entry
                            self.held.add(msg_id)
                            yield AckableMessage(data=data, ack=self._acker(msg_id))
            except UNREACHABLE as exc:
                if not down:
                    log.warning("Redis at %s unreachable (%s): retrying", self._where(), exc)
                down = True
                await asyncio.sleep(pause)  # back-off before reconnecting
                pause = min(pause * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("the job stream was lost (Redis restarted empty?): declaring it again")

    async def _next(self, conn: Redis) -> tuple[bytes, bytes] | None:
        claimed: Any = await conn.xautoclaim(STREAM, GROUP, self.consumer_name, min_idle_time=self.idle_timeout,
                                        start_id="0-0", count=1)
        for msg_id, fields in claimed[1]:
            if fields:
                log.warning("taking over job message %s from a worker silent for over %.0f s",
                            msg_id.decode(), self.visibility_s)
                return msg_id, fields[b"data"]
        fetched: Any = await conn.xreadgroup(GROUP, self.consumer_name, {STREAM: ">"}, count=1, block=self.block)
        for _stream, messages in fetched or ():
            for msg_id, fields in messages:
                return msg_id, fields[b"data"]
        return None

    def _acker(self, msg_id: bytes) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            self.held.discard(msg_id)
            if self.acks_frozen:
                log.info("job message %s left for another worker", msg_id.decode())
                return
            try:
                async with Redis(connection_pool=self.connection_pool) as conn, conn.pipeline(transaction=False) as p:
                    p.xack(STREAM, GROUP, msg_id)
                    p.xdel(STREAM, msg_id)
                    await p.execute()
            except RedisError as exc:  # the outcome is saved: a worker that takes this over skips it
                log.warning("could not acknowledge job message %s: %s", msg_id.decode(), exc)

        return ack

    async def renew(self) -> None:
        """Reset the idle time of held messages, so no other worker takes over work still in progress."""
        if self.held:
            async with Redis(connection_pool=self.connection_pool) as conn:
                await conn.xclaim(STREAM, GROUP, self.consumer_name, min_idle_time=0,
                                  message_ids=list(self.held), justid=True)

    def _where(self) -> str:
        kwargs = self.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


async def declare_group(conn: Redis) -> None:
    try:
        # From id 0: work published while the group did not exist (Redis restarted) is still read.
        await conn.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
