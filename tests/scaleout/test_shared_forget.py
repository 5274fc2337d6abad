"""Forget with front ends sharing a cache through a real redis-server: file id links are per conversation."""

from __future__ import annotations

from pathlib import Path

from chatscribe.core.keys import TranscriptKey
from chatscribe.core.scaleout.connection import sync_client
from chatscribe.core.scaleout.shared_cache import SharedCache
from chatscribe.core.transcript import Segment, Transcript
from tests.scaleout.cluster import RedisServer

HASH = "ab" * 32
KEY = TranscriptKey("tiny.en:beam5:vad1", "0123456789abcdef", HASH)


def _cache(server: RedisServer, folder: Path) -> SharedCache:
    return SharedCache(folder / "cache.sqlite3", max_bytes=1_000_000, client=sync_client(server.url), ttl_s=3600)


def test_a_forgotten_conversation_no_longer_reaches_the_shared_transcript_by_its_file_id(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    one, two = _cache(redis_server, tmp_path / "one"), _cache(redis_server, tmp_path / "two")
    transcript = Transcript(segments=(Segment(0.0, 1.0, " shared words"),), language="en",
                            language_probability=1.0, duration_s=1.0, model="tiny.en")
    one.put(KEY, transcript)
    one.alias("telegram", "F", HASH, "A")
    one.alias("telegram", "F", HASH, "B")
    assert two.hash_for("telegram", "F", "A") == HASH  # learnt through Redis by the other front end
    assert two.hash_for("telegram", "F", "C") is None  # a conversation that never sent it

    assert one.forget("telegram", "A") == 1
    assert one.hash_for("telegram", "F", "A") is None
    assert two.hash_for("telegram", "F", "A") is None  # gone from Redis too
    assert two.hash_for("telegram", "F", "B") == HASH  # B's link stays
    assert one.get(KEY) is not None  # and so does the transcript B still links to
    one.close()
    two.close()
