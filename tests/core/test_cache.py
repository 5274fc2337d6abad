"""The transcript cache on real SQLite files: repeats answered, bounded, durable, never fatal."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import threading
from pathlib import Path

import pytest

from chatscribe.core.cache import TranscriptCache
from chatscribe.core.codecs import dumps_outcome
from chatscribe.core.keys import TranscriptKey
from chatscribe.core.transcript import LOW_CONFIDENCE, Segment, Transcript, Word


def make_transcript(text: str = "Ask not what your country can do for you.", *, truncated: bool = False) -> Transcript:
    words = tuple(
        Word(start=i * 0.4, end=i * 0.4 + 0.3, text=f" {w}", probability=0.9)
        for i, w in enumerate(text.split())
    )
    return Transcript(
        segments=(
            Segment(0.0, 3.2, f" {text}", avg_logprob=-0.3, no_speech_prob=0.02, compression_ratio=1.2,
                    words=words),
            Segment(3.2, 5.0, " Ask what you can do.", avg_logprob=-1.2, flags=frozenset({LOW_CONFIDENCE})),
        ),
        language="en",
        language_probability=0.97,
        duration_s=11.0,
        model="tiny.en:int8:beam5:vad1",
        truncated=truncated,
    )


def content_hash(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def key(n: int, options_digest: str = "v") -> TranscriptKey:
    return TranscriptKey("tiny.en:int8:beam5:vad1", options_digest, content_hash(n))


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "cache.sqlite3"


def test_round_trip_keeps_words_flags_and_truncation(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    original = make_transcript(truncated=True)
    cache.put(key(1, "v1"), original)
    got = cache.get(key(1, "v1"))
    assert got is not None
    assert got.from_cache
    assert dataclasses.replace(got, from_cache=False) == original
    assert got.segments[0].words == original.segments[0].words
    assert got.segments[1].flags == {LOW_CONFIDENCE}
    assert got.truncated


def test_other_options_or_content_miss(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1, "v1"), make_transcript())
    assert cache.get(key(1, "v2")) is None
    assert cache.get(key(2, "v1")) is None


def test_platform_file_id_alias_finds_the_content(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1, "v1"), make_transcript())
    cache.alias("telegram", "AgADfile_unique", content_hash(1))
    assert cache.hash_for("telegram", "AgADfile_unique") == content_hash(1)
    assert cache.hash_for("discord", "AgADfile_unique") is None  # ids are per platform
    assert cache.hash_for("telegram", "unknown") is None


def test_lru_eviction_under_the_byte_bound_keeps_the_recently_used(cache_path: Path) -> None:
    one = len(_body_of(make_transcript()))
    cache = TranscriptCache(cache_path, max_bytes=int(one * 3.5))
    for n in range(3):
        cache.put(key(n), make_transcript())
    cache.alias("slack", "F0", content_hash(0))
    assert cache.get(key(0)) is not None  # 0 is now the most recently used; 1 the least
    cache.put(key(3), make_transcript())
    assert cache.size_bytes() <= cache.max_bytes
    assert cache.get(key(1)) is None
    for n in (0, 2, 3):
        assert cache.get(key(n)) is not None
    assert cache.hash_for("slack", "F0") == content_hash(0)
    for n in (4, 5, 6):  # 0 no longer used: it goes, and its alias with it
        cache.put(key(n), make_transcript())
    assert cache.get(key(0)) is None
    assert cache.hash_for("slack", "F0") is None
    assert cache.entries() == 3


def test_the_bound_counts_bytes_not_characters(cache_path: Path) -> None:
    japanese = make_transcript("日本語の文字起こしです。" * 20)  # 3 bytes per character in UTF-8
    body = _body_of(japanese)
    cache = TranscriptCache(cache_path, max_bytes=(len(body) + len(body.encode())) // 2)
    cache.put(key(1), japanese)
    assert cache.size_bytes() <= cache.max_bytes
    assert cache.get(key(1)) is None  # larger than the whole cache: not stored


def test_survives_a_restart(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1), make_transcript())
    cache.alias("telegram", "uniq", content_hash(1))
    cache.close()
    reopened = TranscriptCache(cache_path, max_bytes=1_000_000)
    assert reopened.hash_for("telegram", "uniq") == content_hash(1)
    got = reopened.get(key(1))
    assert got is not None
    assert got.text == make_transcript().text


def test_a_corrupt_file_is_moved_aside_and_the_cache_works(cache_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache_path.parent.mkdir(parents=True)
    garbage = b"this is not an SQLite database\x00" * 200
    cache_path.write_bytes(garbage)
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    asides = list(cache_path.parent.glob(f"{cache_path.name}.corrupt-*"))
    assert len(asides) == 1
    assert asides[0].read_bytes() == garbage  # kept for whoever wants to look at it
    assert "moved" in caplog.text
    cache.put(key(1), make_transcript())
    assert cache.get(key(1)) is not None


def test_a_damaged_page_found_in_use_is_a_miss_and_the_file_is_moved_aside(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=10_000_000)
    for n in range(200):
        cache.put(key(n), make_transcript(f"marker {n:03d} " * 5))
    cache.close()
    data = bytearray(cache_path.read_bytes())
    page = data.find(b"marker 150 ") // 4096  # a page the open-time check never reads
    data[page * 4096 : (page + 1) * 4096] = b"\x13" * 4096
    cache_path.write_bytes(bytes(data))

    reopened = TranscriptCache(cache_path, max_bytes=10_000_000)
    assert reopened.get(key(150)) is None  # a miss, not an exception that fails the job
    assert len(list(cache_path.parent.glob(f"{cache_path.name}.corrupt-*"))) == 1
    reopened.put(key(150), make_transcript())
    assert reopened.get(key(150)) is not None


def test_a_run_finishing_after_the_cache_closed_leaves_the_file_alone(
    cache_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The CLI crashing mid-run closes the cache while a transcription still finishes in a thread: its
    # "cannot operate on a closed database" is not corruption, and the file with every earlier answer stays.
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1), make_transcript())
    cache.close()
    cache.put(key(2), make_transcript("Finished after the close."))
    cache.alias("cli", None, content_hash(2))
    assert cache.get(key(1)) is None
    assert cache.hash_for("telegram", "uniq") is None
    assert list(cache_path.parent.glob(f"{cache_path.name}.corrupt-*")) == []
    assert "unreadable" not in caplog.text
    reopened = TranscriptCache(cache_path, max_bytes=1_000_000)
    assert reopened.get(key(1)) is not None


def test_a_cache_file_from_before_the_column_rename_still_answers(cache_path: Path) -> None:
    cache_path.parent.mkdir(parents=True)
    with sqlite3.connect(cache_path) as older:  # the table as versions before model_options wrote it
        older.execute("CREATE TABLE transcripts (content_hash TEXT NOT NULL, variant TEXT NOT NULL, body TEXT NOT "
                      "NULL, size INTEGER NOT NULL, last_used REAL NOT NULL, created REAL NOT NULL DEFAULT 0, "
                      "PRIMARY KEY (content_hash, variant))")
        body = _body_of(make_transcript())
        older.execute("INSERT INTO transcripts VALUES (?, ?, ?, ?, ?, ?)",
                      (content_hash(1), key(1).model_options, body, len(body), 1.0, 1.0))
    older.close()
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    got = cache.get(key(1))
    assert got is not None
    assert got.text == make_transcript().text


def test_concurrent_use_from_threads(cache_path: Path) -> None:
    shared = TranscriptCache(cache_path, max_bytes=50_000_000)
    second = TranscriptCache(cache_path, max_bytes=50_000_000)  # another process on the same file
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        cache = shared if worker % 2 else second
        try:
            start.wait()
            for i in range(40):
                item = key(worker * 1000 + i)
                cache.put(item, make_transcript(f"worker {worker} item {i}"))
                cache.alias("telegram", f"{worker}-{i}", item.content_hash)
                got = cache.get(item)
                assert got is not None
                assert got.segments[0].text == f" worker {worker} item {i}"
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shared.entries() == 8 * 40
    assert second.hash_for("telegram", "7-39") == content_hash(7039)


def _body_of(transcript: Transcript) -> str:
    return dumps_outcome(transcript)


def test_an_entry_from_another_version_is_a_miss_then_replaced(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1), make_transcript())
    with sqlite3.connect(cache_path) as other_version:
        other_version.execute("UPDATE transcripts SET body=?", ('{"segments": [], "speaker_count": 2}',))
    assert cache.get(key(1)) is None
    cache.put(key(1), make_transcript())
    assert cache.get(key(1)) is not None


def test_a_transcript_past_its_ttl_is_a_miss_and_is_purged_at_open(cache_path: Path) -> None:
    now = [1_000_000.0]
    day = 86400.0
    cache = TranscriptCache(cache_path, max_bytes=1_000_000, ttl_s=30 * day, clock=lambda: now[0])
    cache.put(key(1), make_transcript())
    cache.alias("telegram", "old", content_hash(1), chat_id="A")
    now[0] += 20 * day
    cache.put(key(2), make_transcript())
    now[0] += 9 * day
    assert cache.get(key(1)) is not None  # 29 days: still kept, and the use does not renew it
    now[0] += 2 * day
    assert cache.get(key(1)) is None  # 31 days after it was made
    assert cache.get(key(2)) is not None
    cache.close()

    reopened = TranscriptCache(cache_path, max_bytes=1_000_000, ttl_s=30 * day, clock=lambda: now[0])
    assert reopened.entries() == 1  # the expired one is gone from the file, not only hidden
    assert reopened.hash_for("telegram", "old", "A") is None
    with sqlite3.connect(cache_path) as db:
        bodies = [row[0] for row in db.execute("SELECT content_hash FROM transcripts")]
    assert bodies == [content_hash(2)]


def test_a_cache_in_use_purges_expired_transcripts_without_a_restart(cache_path: Path) -> None:
    now = [1_000_000.0]
    cache = TranscriptCache(cache_path, max_bytes=1_000_000, ttl_s=3600, clock=lambda: now[0])
    cache.put(key(1), make_transcript())
    now[0] += 2 * 3600  # past the TTL and past the sweep interval
    cache.put(key(2), make_transcript())
    assert cache.entries() == 1


def test_file_ids_are_per_conversation(cache_path: Path) -> None:
    cache = TranscriptCache(cache_path, max_bytes=1_000_000)
    cache.put(key(1), make_transcript())
    cache.alias("telegram", "F", content_hash(1), chat_id="A")
    assert cache.hash_for("telegram", "F", "A") == content_hash(1)
    assert cache.hash_for("telegram", "F", "B") is None  # B never sent it: it downloads, then hits by content
    assert cache.forget("telegram", "A") == 1
    assert cache.get(key(1)) is None  # only A brought it
