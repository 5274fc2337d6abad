"""The small pieces of the shared state: what the logs and `doctor` show of the broker URL, which workers
count as alive, and outcomes surviving the trip through Redis."""

from __future__ import annotations

import json

import pytest

from tests.needs import require

require("taskiq_redis", "the scaleout extra is not installed (pip install -e '.[dev]')")

from chatscribe.core.errors import UnreadableMedia  # noqa: E402
from chatscribe.core.options import TranscribeOptions  # noqa: E402
from chatscribe.core.scaleout.state import (  # noqa: E402
    SEEN_TTL_S,
    describe_url,
    dump_options,
    dump_outcome,
    load_error,
    load_options,
    load_transcript,
    parse_workers,
)
from chatscribe.core.transcript import Segment, Transcript  # noqa: E402


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


def test_outcomes_and_options_survive_the_trip_through_redis() -> None:
    transcript = Transcript(segments=(Segment(0.0, 2.5, " Ask not."),), language="en", language_probability=0.9,
                            duration_s=2.5, model="tiny.en")
    back = load_transcript(dump_outcome(transcript))
    assert back.text == transcript.text
    assert back.segments == transcript.segments
    failure = load_error(dump_outcome(UnreadableMedia()))
    assert failure.code == "unreadable"
    assert failure.user_message == UnreadableMedia().user_message
    options = TranscribeOptions(language="de", vocabulary="Kubernetes", expected_languages=("de", "en"))
    assert load_options(json.loads(json.dumps(dump_options(options)))) == options
