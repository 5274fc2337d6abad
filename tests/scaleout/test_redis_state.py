"""The small pieces of the shared state: what the logs and `doctor` show of the broker URL, which workers
count as alive, and the key schema matching the keys the cache key names. (The values' codecs:
tests/core/test_codecs.py.)"""

from __future__ import annotations

import json
from typing import get_args

import pytest

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.keys import TranscriptKey  # noqa: E402
from chatscribe.core.scaleout import schema  # noqa: E402
from chatscribe.core.scaleout.connection import describe_url  # noqa: E402
from chatscribe.core.scaleout.presence import WorkerInfo, parse_workers, worker_record  # noqa: E402
from chatscribe.core.scaleout.schema import SEEN_TTL_S  # noqa: E402


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@10.0.0.5:6380/2", "redis://10.0.0.5:6380/2"),
    ("rediss://default:s3cret@cache.example:6379", "rediss://cache.example:6379/0"),
    ("redis://localhost", "redis://localhost/0"),
])
def test_broker_address_is_shown_without_its_password(url: str, shown: str) -> None:
    assert describe_url(url) == shown
    assert "s3cret" not in describe_url(url)


def test_only_workers_heard_from_recently_count() -> None:
    now = 1_000_000.0
    raw = {
        b"alive": json.dumps({"model_id": "base:beam5:vad1", "slots": 8, "busy": 3, "done": 10, "seen": now - 1}),
        b"gone": json.dumps({"model_id": "base:beam5:vad1", "slots": 8, "seen": now - SEEN_TTL_S - 1}),
    }
    workers = parse_workers(raw, now=now)
    assert [(w.name, w.slots, w.busy, w.done) for w in workers] == [("alive", 8, 3, 10)]


def test_a_heartbeat_reads_back_as_the_worker_that_wrote_it() -> None:
    info = WorkerInfo("gpu-1", "base:beam5:vad1", slots=8, busy=2, done=40, seen=1_000_000.0)
    assert parse_workers({b"gpu-1": worker_record(info, pid=4242)}, now=info.seen + 1) == [info]


def test_the_schema_writes_the_keys_its_docstring_names() -> None:
    key = TranscriptKey("base:beam5:vad1", "0123456789abcdef", "ab" * 32)
    written = {schema.job(state, key) for state in get_args(schema.JobState)}
    written |= {schema.alias("slack", "C1", "F1"), schema.rate("slack", "U1"), schema.WORKERS, schema.FRONTENDS,
                schema.TRANSCRIBED, schema.EVENTS, schema.STREAM}
    documented = schema.__doc__ or ""
    for name in written:
        shape = name.removeprefix(schema.PREFIX).replace(str(key), "<key>")
        shape = shape.replace("slack:C1:F1", "<platform>:<chat>:<file id>").replace("slack:U1", "<platform>:<user>")
        assert f"  {shape} " in documented, f"{name} is written but the schema's docstring does not name {shape}"
    assert schema.parse_event(schema.event("done", key).encode()) == ("done", key)
