"""Jobs: how accepted work is kept, ordered and run in this process.

journal.py    every accepted job on disk until its answer is delivered (restart-safe)
admission.py  who may submit now: rate limits per person, the media byte budget
inflight.py   one run for identical requests arriving together
crashes.py    the crash policy: a job that keeps killing the process runs unbatched, then is set aside
scheduler.py  fair turns between chats, and which notes wait for a batch
runner.py     the runner seam: LocalRunner decodes and transcribes here (a scale-out runner sends the work away)
speed.py, threads.py   measured speed for estimates; daemon threads for blocking work
"""

from .admission import AdmissionControl, MediaBudget, RateLimiter
from .crashes import CRASH_LIMIT
from .inflight import InFlight
from .journal import UNFINISHED, Delivery, Job, Journal, ProgressUpdate, Receipt
from .runner import LocalRunner, Notify, OnSegment, Runner, SegmentDone, Work, default_slots
from .scheduler import TURN_S, FairScheduler, Release, Ticket, batch_wait_s

__all__ = [
    "CRASH_LIMIT",
    "TURN_S",
    "UNFINISHED",
    "AdmissionControl",
    "Delivery",
    "FairScheduler",
    "InFlight",
    "Job",
    "Journal",
    "LocalRunner",
    "MediaBudget",
    "Notify",
    "OnSegment",
    "ProgressUpdate",
    "RateLimiter",
    "Receipt",
    "Release",
    "Runner",
    "SegmentDone",
    "Ticket",
    "Work",
    "batch_wait_s",
    "default_slots",
]
