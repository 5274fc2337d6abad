"""Every Redis key and channel front ends and transcription workers share (CHATSCRIBE_BROKER_URL).

All under `chatscribe:`; `<key>` is a TranscriptKey as text, "<model id>:<options digest>:<content sha256>"
(core/keys.py), the same key the local cache uses:
  jobs                    stream of taskiq messages, read by the consumer group `workers` (broker.py)
  media:<key>             the bytes to transcribe, while a message for them is outstanding (TTL, refreshed
                          by the front end that published it)
  claim:<key>             which front end publishes that content (so two front ends never publish it twice)
  attempts:<key>          how many workers began this job: past CRASH_LIMIT it is set aside (a day's TTL)
  t:<key>                 the transcript: the shared cache, written by the worker, read by every front end
  err:<key>               a failure's code and sentence (core/codecs.py), kept briefly
  alias:<platform>:<chat>:<file id>   content hash of a conversation's platform file, answered without download
  rate:<platform>:<user>  sorted set of recent submissions: the per-person rate limit across front ends
  workers                 hash: worker name -> JSON (model, slots, busy, done, last seen); `doctor` lists them
  frontends               hash: front end id -> JSON (jobs accepted and unanswered, last seen): the shared
                          queue cap
  transcribed             counter of engine runs by all workers
  events                  pub/sub channel: "<started|done> <key>", a fast path; front ends also poll, so none
                          is lost
No other module writes a key by hand: they all come from here.
"""

from __future__ import annotations

from typing import Literal

from ..config import Settings
from ..keys import TranscriptKey

PREFIX = "chatscribe:"
STREAM = PREFIX + "jobs"
GROUP = "workers"
EVENTS = PREFIX + "events"
WORKERS = PREFIX + "workers"
FRONTENDS = PREFIX + "frontends"
TRANSCRIBED = PREFIX + "transcribed"
"""Counter of engine runs by all workers (cache misses), for `doctor` and benchmarks."""
ATTEMPTS_PATTERN = PREFIX + "attempts:*"
"""All attempt counters, for benchmarks and tests that sum them."""

MEDIA_TTL_S = 3600
ERROR_TTL_S = 600
ATTEMPTS_TTL_S = 86400
SEEN_TTL_S = 15.0
"""A worker or front end not heard from for this long is counted as gone."""

Event = Literal["started", "done"]


def shared_model_id(settings: Settings) -> str:
    """The model part of every shared key: the same on front ends and workers with the same settings."""
    return f"{settings.model}:beam{settings.beam_size}:vad{int(settings.vad)}"


JobState = Literal["media", "claim", "attempts", "transcript", "error"]
"""The keys one job's state lives in, named for what they hold (see above)."""
_JOB_PREFIXES: dict[JobState, str] = {"media": "media", "claim": "claim", "attempts": "attempts",
                                      "transcript": "t", "error": "err"}


def job(state: JobState, key: TranscriptKey) -> str:
    """The Redis key of one part of a job's state, e.g. job("media", key) -> "chatscribe:media:<key>"."""
    return f"{PREFIX}{_JOB_PREFIXES[state]}:{key}"


def alias(platform: str, chat_id: str, file_id: str) -> str:
    return f"{PREFIX}alias:{platform}:{chat_id}:{file_id}"


def rate(platform: str, user_id: str) -> str:
    return f"{PREFIX}rate:{platform}:{user_id}"


def event(kind: Event, key: TranscriptKey) -> str:
    """A message on EVENTS."""
    return f"{kind} {key}"


def parse_event(data: bytes | str) -> tuple[str, TranscriptKey]:
    text = data.decode() if isinstance(data, bytes) else data
    kind, _, key = text.partition(" ")
    return kind, TranscriptKey.parse(key)
