"""The job journal: accepted work is written to SQLite before the platform is acknowledged.

States: queued -> running -> transcribed | failed -> delivered. After a crash, queued and running jobs
run again (their media fetched again through the platform reference) and transcribed or failed ones
are delivered. Delivery records each message the platform accepted, so a restart resumes after the
last one: a transcript is sent twice only if the process dies inside that one SQLite write.

A job is marked `exposed` while its media is being read or transcribed. A process that dies with the
mark set (a decoder crash on a hostile file, the kernel's OOM killer) counts a crash against the job
at the next start: the service runs it alone then, and sets it aside after CRASH_LIMIT crashes, so one
file cannot keep the bot in a crash loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol

from ..cache import decode_transcript, encode_transcript
from ..errors import ChatscribeError
from ..media import Fetch, MediaRequest
from ..options import TranscribeOptions
from ..private import private_db
from ..transcript import Transcript

State = Literal["queued", "running", "transcribed", "failed", "delivered"]
UNFINISHED: tuple[State, ...] = ("queued", "running", "transcribed", "failed")
CRASH_LIMIT = 3


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    stage: Literal["queued", "transcribing"]
    position: int | None = None
    """Place in the queue, 1 = next; None while transcribing."""
    fraction: float = 0.0
    """Share of the audio done."""
    eta_s: float | None = None
    """Estimate of seconds until the answer, from measured speed."""
    detail: str | None = None
    """A sentence to show with the status, e.g. that answers are delayed while transcription is unreachable."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    request: MediaRequest
    options: TranscribeOptions
    parts_sent: int = 0
    """Messages of the answer the platform already accepted (resume after these)."""
    notes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """What the platform's bot chose to remember about this job (e.g. its status message id)."""


class JobFailed(ChatscribeError):
    """An error outcome read back from the journal: the original type's code and sentence."""

    def __init__(self, code: str, user_message: str) -> None:
        super().__init__(user_message)
        self.code = code


class Receipt(Protocol):
    parts_sent: int

    async def part_sent(self) -> None:
        """Record that the platform accepted one more message of this answer."""

    async def note(self, key: str, value: str) -> None:
        """Remember a small value with the job (survives restarts)."""


class Delivery(Protocol):
    """What a bot gives the service so that its jobs can be run and answered, also after a restart."""

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        """Rebuild the download of a journaled job's media from its platform reference."""
        ...

    async def progress(self, job: Job, update: ProgressUpdate) -> None: ...

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        """Send the answer; raise to have it retried (the service backs off, then gives up loudly)."""
        ...


@dataclass(frozen=True, slots=True)
class JournalEntry:
    job: Job
    state: State
    outcome: Transcript | ChatscribeError | None
    crashes: int = 0
    """Times a process died while this job's media was being read or transcribed."""


class Journal:
    """Sync SQLite access; the service calls it off the event loop."""

    def __init__(self, path: Path) -> None:
        private_db(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted job must survive power loss too
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column in ("exposed", "crashes"):  # journals written before these columns existed
            if column not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")

    def add(self, request: MediaRequest, options: TranscribeOptions) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], request=request, options=options)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, platform, chat_id, user_id, request, options, state, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (job.id, request.platform, request.chat_id, request.user_id, _dump_request(request),
                 json.dumps(_options_dict(options)), now, now),
            )
        return job

    def set_state(self, job_id: str, state: State) -> None:
        self._update(job_id, "state=?", state)

    def set_outcome(self, job_id: str, outcome: Transcript | ChatscribeError) -> None:
        if isinstance(outcome, Transcript):
            self._update(job_id, "state='transcribed', exposed=0, outcome=?", json.dumps(encode_transcript(outcome)))
        else:
            body = json.dumps({"code": outcome.code, "message": outcome.user_message})
            self._update(job_id, "state='failed', exposed=0, outcome=?", body)

    def exposed(self, job_id: str, exposed: bool) -> None:
        """Mark (or clear) that the job's media is being read or transcribed right now."""
        self._update(job_id, "exposed=?", int(exposed))

    def part_sent(self, job_id: str) -> None:
        self._update(job_id, "parts_sent=parts_sent+1")

    def note(self, job_id: str, key: str, value: str) -> None:
        self._update(job_id, "notes=json_set(notes, ?, ?)", f"$.{key}", value)

    def delivered(self, job_id: str) -> None:
        self.set_state(job_id, "delivered")

    def forget(self, platform: str, chat_id: str) -> int:
        """Delete the chat's answered jobs; returns how many. Accepted work not yet answered stays, so that
        nothing accepted is lost: it is answered, and can be forgotten once it has been."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE platform=? AND chat_id=? AND state='delivered'", (platform, chat_id)
            )
        return int(cursor.rowcount)

    def unfinished(self, platform: str, fetchers: Delivery) -> list[JournalEntry]:
        """Called once per start: a job still marked exposed was being worked on when the process died."""
        with self._lock:
            self._db.execute("UPDATE jobs SET crashes=crashes+1, exposed=0 WHERE platform=? AND exposed=1",
                             (platform,))
            rows = self._db.execute(
                "SELECT id, request, options, state, outcome, parts_sent, notes, crashes FROM jobs "
                "WHERE platform=? AND state IN ('queued','running','transcribed','failed') ORDER BY created",
                (platform,),
            ).fetchall()
        return [_entry(row, fetchers) for row in rows]

    def count(self, *states: State, platform: str | None = None) -> int:
        marks = ",".join("?" * len(states))
        query = f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})"
        args: list[str] = list(states)
        if platform:
            query += " AND platform=?"
            args.append(platform)
        with self._lock:
            return int(self._db.execute(query, args).fetchone()[0])

    def states(self) -> dict[str, str]:
        """id -> state, for tests and `doctor`."""
        with self._lock:
            return dict(self._db.execute("SELECT id, state FROM jobs").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _update(self, job_id: str, assignment: str, *values: object) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE jobs SET {assignment}, updated=? WHERE id=?", (*values, time.time(), job_id)
            )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    request TEXT NOT NULL,
    options TEXT NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT,
    parts_sent INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '{}',
    exposed INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs(platform, state);
"""

_REQUEST_FIELDS = ("platform", "chat_id", "user_id", "kind", "mime_type", "size_bytes", "duration_hint_s",
                   "file_name", "platform_file_id")


def _dump_request(request: MediaRequest) -> str:
    data = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    data["reference"] = dict(request.reference)
    return json.dumps(data)


def _options_dict(options: TranscribeOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in TranscribeOptions.__slots__}  # type: ignore[attr-defined]


def _entry(row: tuple, delivery: Delivery) -> JournalEntry:  # type: ignore[type-arg]
    job_id, request_json, options_json, state, outcome_json, parts_sent, notes_json, crashes = row
    data = json.loads(request_json)
    reference = MappingProxyType(data.pop("reference"))
    request = MediaRequest(**data, reference=reference, fetch=delivery.fetcher(reference))
    options_data = json.loads(options_json)
    options_data["expected_languages"] = tuple(options_data["expected_languages"])
    job = Job(job_id, request, TranscribeOptions(**options_data), parts_sent,
              MappingProxyType(json.loads(notes_json)))
    outcome: Transcript | ChatscribeError | None = None
    if state == "transcribed":
        outcome = decode_transcript(json.loads(outcome_json))
    elif state == "failed":
        failure = json.loads(outcome_json)
        outcome = JobFailed(failure["code"], failure["message"])
    return JournalEntry(job, state, outcome, crashes)
