"""Redis clients for the scale-out, and how its address is shown."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis is down or restarting: callers wait and retry, never fail a job for it."""


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
