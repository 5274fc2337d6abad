"""The job journal: accepted work is written to SQLite before the platform is acknowledged.

States: queued -> running -> transcribed | failed -> delivered. After a crash, queued and running jobs
run again (their media fetched again through the platform reference) and transcribed or failed ones
are delivered. Delivery records each message the platform accepted, so a restart resumes after the
last one. A process can die after the platform accepted a message and before that was recorded, so a
delivery also records that it is about to send (Receipt.sending): the next attempt knows the message
may have arrived (Receipt.uncertain), and a platform whose history can be read looks before sending
it again.

A job is marked `media_in_hand` while its media is being read or transcribed. A process that dies with the
mark set (a decoder crash on a hostile file, the kernel's OOM killer) counts a crash against the job
at the next start: the service runs it unbatched then, and sets it aside after CRASH_LIMIT crashes
(core/jobs/crashes.py), so one
file cannot keep the bot in a crash loop.

Once delivered, a row is stripped of its transcript (or error), its notes and its platform reference
(download URLs, Discord interaction tokens) and kept only as a record (ids, state, times); such records
are deleted after the retention (CHATSCRIBE_JOB_RETENTION_H). Unanswered work is never purged.

When the data dir cannot be written (disk full, file system turned read-only), `add` refuses the job
with StorageUnavailable before the platform is acknowledged, while updates to jobs already accepted are
kept in memory, in order, and written as soon as a write succeeds again: a running job is still answered,
and its journal row stays at its last written state, so it is resumed if the process dies meanwhile.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol

from ..codecs import decode_options, dumps_outcome, encode_options, loads_failure, loads_transcript
from ..errors import ChatscribeError
from ..media import Fetch, MediaRequest
from ..options import TranscribeOptions
from ..private import private_db
from ..storage import storage_error
from ..transcript import Transcript

log = logging.getLogger(__name__)

State = Literal["queued", "running", "transcribed", "failed", "delivered"]
UNFINISHED: tuple[State, ...] = ("queued", "running", "transcribed", "failed")


def new_job_id() -> str:
    """A job's id; a repeat answered from the cache gets one too, without a journal row."""
    return uuid.uuid4().hex[:12]


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
    text: str | None = None
    """The transcript decoded so far (joined segments) while transcribing; None when unknown (a batch, a
    runner in another process). The courier shows its tail after the sentence."""


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    request: MediaRequest
    options: TranscribeOptions
    parts_sent: int = 0
    """Messages of the answer the platform already accepted (resume after these)."""
    notes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """What the platform's bot chose to remember about this job (e.g. its status message id)."""


class Receipt(Protocol):
    parts_sent: int
    uncertain: bool
    """Message `parts_sent` was being sent when a process died or an attempt failed, before the platform's
    reply was recorded: it may have arrived. A platform whose history can be read looks before sending it
    again; the others send it again (twice rather than never)."""

    async def sending(self) -> None:
        """Record that message `parts_sent` is about to be sent (before the platform is asked)."""

    async def part_sent(self) -> None:
        """Record that the platform accepted one more message of this answer."""


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

    def __init__(self, path: Path, *, retention_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`retention_s`: how long an answered job's (stripped) row is kept; None keeps it.
        `clock`: wall-clock seconds; tests pass their own to let the retention pass without waiting."""
        private_db(path)
        self.retention_s = retention_s
        self._clock = clock
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self._backlog: list[tuple[str, tuple[object, ...]]] = []
        """Updates that could not be written yet (storage full or read-only), oldest first."""
        self._holding = False
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted job must survive power loss too
        self._db.execute("PRAGMA secure_delete=ON")  # a stripped transcript or token is overwritten on disk
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "exposed" in columns:  # the mark's name before it said what it marks
            self._db.execute("ALTER TABLE jobs RENAME COLUMN exposed TO media_in_hand")
            columns.add("media_in_hand")
        for column in ("media_in_hand", "crashes"):  # journals written before these columns existed
            if column not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        self._strip_delivered()  # rows answered by a version that kept them whole
        self.purge()

    def add(self, request: MediaRequest, options: TranscribeOptions) -> Job:
        job = Job(id=new_job_id(), request=request, options=options)
        now = self._clock()
        with self._lock:
            try:
                self._write_backlog()
                self._db.execute(
                    "INSERT INTO jobs (id, platform, chat_id, user_id, request, options, state, created, "
                    "updated) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (job.id, request.platform, request.chat_id, request.user_id, _dump_request(request),
                     json.dumps(encode_options(options)), now, now),
                )
            except sqlite3.OperationalError as exc:
                refusal = storage_error(exc)
                if refusal is None:
                    raise
                log.warning("journal: a new job was refused, the data dir cannot be written: %s", exc)
                raise refusal from exc
        return job

    def set_state(self, job_id: str, state: State) -> None:
        self._update(job_id, "state=?", state)

    def set_outcome(self, job_id: str, outcome: Transcript | ChatscribeError) -> None:
        state = "transcribed" if isinstance(outcome, Transcript) else "failed"
        self._update(job_id, f"state='{state}', media_in_hand=0, outcome=?", dumps_outcome(outcome))

    def media_in_hand(self, job_id: str, in_hand: bool) -> None:
        """Mark (or clear) that the job's media is being read or transcribed right now."""
        self._update(job_id, "media_in_hand=?", int(in_hand))

    def part_sent(self, job_id: str) -> None:
        self._update(job_id, "parts_sent=parts_sent+1")

    def note(self, job_id: str, key: str, value: str) -> None:
        self._update(job_id, "notes=json_set(notes, ?, ?)", f"$.{key}", value)

    def delivered(self, job_id: str) -> None:
        """Answered: keep only what counting and forgetting need (ids, state, times), not the transcript
        and not the platform reference, which may hold a Discord interaction token or a download URL."""
        self._update(job_id, _STRIP)
        if self._clock() >= self._next_purge:
            self.purge()

    def purge(self) -> int:
        """Delete answered jobs older than the retention (done at open and at most every PURGE_EVERY_S)."""
        self._next_purge = self._clock() + PURGE_EVERY_S
        if self.retention_s is None:
            return 0
        with self._lock:
            try:
                cursor = self._db.execute("DELETE FROM jobs WHERE state='delivered' AND updated<?",
                                          (self._clock() - self.retention_s,))
            except sqlite3.OperationalError as exc:  # a full or read-only disk: try again at the next sweep
                log.warning("journal: answered jobs could not be purged now: %s", exc)
                return 0
        return int(cursor.rowcount)

    def _strip_delivered(self) -> None:
        with self._lock:
            try:
                self._db.execute(f"UPDATE jobs SET {_STRIP} WHERE state='delivered' AND outcome IS NOT NULL")
            except sqlite3.OperationalError as exc:
                log.warning("journal: answered jobs could not be stripped now: %s", exc)

    def forget(self, platform: str, chat_id: str) -> int:
        """Delete the chat's answered jobs; returns how many. Accepted work not yet answered stays, so that
        nothing accepted is lost: it is answered, and can be forgotten once it has been."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE platform=? AND chat_id=? AND state='delivered'", (platform, chat_id)
            )
        return int(cursor.rowcount)

    def unfinished(self, platform: str, fetchers: Delivery) -> list[JournalEntry]:
        """Called once per start: a job still marked media_in_hand was being worked on when the process died."""
        with self._lock:
            self._db.execute("UPDATE jobs SET crashes=crashes+1, media_in_hand=0 WHERE platform=? AND media_in_hand=1",
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

    def pending_writes(self) -> int:
        """Updates held in memory because the data dir could not be written (0 when all is on disk)."""
        with self._lock:
            return len(self._backlog)

    def close(self) -> None:
        with self._lock:
            try:
                self._write_backlog()
            except sqlite3.OperationalError as exc:
                log.warning("journal: %d update(s) could not be written (%s); their jobs are resumed at the "
                            "next start from their last written state", len(self._backlog), exc)
            self._backlog.clear()
            self._db.close()

    def _update(self, job_id: str, assignment: str, *values: object) -> None:
        with self._lock:
            self._backlog.append((f"UPDATE jobs SET {assignment}, updated=? WHERE id=?",
                                  (*values, self._clock(), job_id)))
            try:
                self._write_backlog()
            except sqlite3.OperationalError as exc:
                if storage_error(exc) is None:
                    raise
                if not self._holding:  # once per outage, not once per update
                    self._holding = True
                    log.warning("journal: the data dir cannot be written (%s); job updates are kept in memory "
                                "until it can", exc)

    def _write_backlog(self) -> None:
        """Write the held updates in order; stops at the first that fails, keeping it and the rest."""
        while self._backlog:
            statement, values = self._backlog[0]
            try:
                self._db.execute(statement, values)
            except sqlite3.OperationalError as exc:
                if storage_error(exc) is None:
                    self._backlog.pop(0)  # not a storage condition: retrying it would not help
                raise
            self._backlog.pop(0)
            if not self._backlog and self._holding:
                self._holding = False
                log.info("journal: the data dir can be written again; held job updates are written")


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
    media_in_hand INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs(platform, state);
"""

_STRIP = ("state='delivered', outcome=NULL, notes='{}', "
          "request=json_remove(request, '$.reference', '$.file_name')")
"""What a delivered row loses. It keeps platform, chat, user, kind, size and file id: forget and doctor use them."""
PURGE_EVERY_S = 3600.0

_REQUEST_FIELDS = ("platform", "chat_id", "user_id", "kind", "mime_type", "size_bytes", "duration_hint_s",
                   "file_name", "platform_file_id", "replies")


def _dump_request(request: MediaRequest) -> str:
    data = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    data["reference"] = dict(request.reference)
    return json.dumps(data)


def _entry(row: tuple, delivery: Delivery) -> JournalEntry:
    job_id, request_json, options_json, state, outcome_json, parts_sent, notes_json, crashes = row
    data = json.loads(request_json)
    reference = MappingProxyType(data.pop("reference"))
    request = MediaRequest(**data, reference=reference, fetch=delivery.fetcher(reference))
    job = Job(job_id, request, decode_options(json.loads(options_json)), parts_sent,
              MappingProxyType(json.loads(notes_json)))
    outcome: Transcript | ChatscribeError | None = None
    if state == "transcribed":
        outcome = loads_transcript(outcome_json)
    elif state == "failed":
        outcome = loads_failure(outcome_json)
    return JournalEntry(job, state, outcome, crashes)
