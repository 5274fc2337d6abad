"""The local SQLite cache with Redis behind it: a transcript made anywhere answers everywhere."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import redis
from redis.exceptions import RedisError

from ..cache import NO_CHAT, TranscriptCache
from ..codecs import dumps_outcome, loads_transcript
from ..keys import TranscriptKey
from ..transcript import Transcript
from . import schema

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5.0
"""While Redis is down it is asked again only this often: each try may wait a timeout."""


def shared_transcript(body: bytes | str) -> Transcript:
    """A transcript read from Redis (schema.transcript): made earlier, by some worker."""
    return dataclasses.replace(loads_transcript(body), from_cache=True)


class SharedCache(TranscriptCache):
    """Every Redis failure falls back to the local cache (logged once per outage): an outage makes answers
    slower, never wrong."""

    def __init__(self, path: Path, *, max_bytes: int, client: redis.Redis, ttl_s: int,
                 local_ttl_s: float | None = None) -> None:
        """`ttl_s`: the shared copies' lifetime in Redis; `local_ttl_s`: the local cache's (CHATSCRIBE_CACHE_TTL_H)."""
        super().__init__(path, max_bytes=max_bytes, ttl_s=local_ttl_s)
        self._redis = client
        self._ttl_s = ttl_s
        self._down = False
        self._retry_at = 0.0

    def get(self, key: TranscriptKey) -> Transcript | None:
        local = super().get(key)
        if local is not None:
            return local
        body = self._call(self._redis.get, schema.job("transcript", key))
        if not body:
            return None
        transcript = shared_transcript(body)
        super().put(key, transcript)
        return transcript

    def put(self, key: TranscriptKey, transcript: Transcript) -> None:
        super().put(key, transcript)
        if not transcript.from_cache:
            self._call(self._redis.set, schema.job("transcript", key), dumps_outcome(transcript), ex=self._ttl_s)

    def hash_for(self, platform: str, file_id: str, chat_id: str = NO_CHAT) -> str | None:
        local = super().hash_for(platform, file_id, chat_id)
        if local is not None:
            return local
        remote = self._call(self._redis.get, schema.alias(platform, chat_id, file_id))
        return remote.decode() if remote else None

    def alias(self, platform: str, file_id: str | None, content_hash: str, chat_id: str = NO_CHAT) -> None:
        super().alias(platform, file_id, content_hash, chat_id)
        if file_id:
            self._call(self._redis.set, schema.alias(platform, chat_id, file_id), content_hash, ex=self._ttl_s)

    def forget(self, platform: str, chat_id: str) -> int:
        """Also drops the conversation's shared file id links this front end made. The shared transcripts
        themselves expire with CHATSCRIBE_SHARED_CACHE_TTL_S: another front end's conversations may own them."""
        with self._lock:
            file_ids = [row[0] for row in self._db.execute(
                "SELECT file_id FROM links WHERE platform=? AND chat_id=? AND file_id!=''", (platform, chat_id))]
        count = super().forget(platform, chat_id)
        for file_id in file_ids:
            self._call(self._redis.delete, schema.alias(platform, chat_id, file_id))
        return count

    def close(self) -> None:
        super().close()
        self._redis.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if self._closed:  # as the local part: a run finishing after the close reaches nothing
            return None
        if self._down and time.monotonic() < self._retry_at:
            return None
        try:
            result = method(*args, **kwargs)
        except RedisError as exc:
            if not self._down:
                log.warning("shared cache unreachable (%s): using the local cache until Redis answers", exc)
            self._down, self._retry_at = True, time.monotonic() + RETRY_AFTER_S
            return None
        self._down = False
        return result
