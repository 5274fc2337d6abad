"""Delivering an answer until the platform takes it: the journaled receipt, and the back-off between tries.

The receipt is the one count of the messages a platform accepted (the journal's `parts_sent`); a try
that fails part-way leaves it where it got to, so the next try, in this process or after a restart,
goes on from there.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import ChatscribeError
from ..jobs.journal import Delivery, Job, Journal
from ..transcript import Transcript

log = logging.getLogger(__name__)

DELIVERY_BACKOFF_S = (1.0, 3.0, 10.0, 30.0)
"""Pauses before the second and later tries; after the last one the job waits for the next start."""
SENDING = "sending"
"""Job note: the index of the message whose sending began (Receipt.uncertain)."""


class JournalReceipt:
    """The journal's Receipt for one job."""

    def __init__(self, journal: Journal, job: Job) -> None:
        self._journal = journal
        self._job_id = job.id
        self.parts_sent = job.parts_sent
        self.uncertain = job.notes.get(SENDING) == str(job.parts_sent)  # begun by a process that died

    async def sending(self) -> None:
        self.uncertain = True  # until the platform's acceptance is recorded; a failed attempt leaves it so
        await asyncio.to_thread(self._journal.note, self._job_id, SENDING, str(self.parts_sent))

    async def part_sent(self) -> None:
        self.parts_sent += 1
        self.uncertain = False
        await asyncio.to_thread(self._journal.part_sent, self._job_id)


async def deliver_with_retries(delivery: Delivery, job: Job, outcome: Transcript | ChatscribeError,
                               journal: Journal) -> bool:
    """True once the platform took the answer; False after every try failed (logged, kept journaled)."""
    receipt = JournalReceipt(journal, job)
    for attempt, pause in enumerate((0.0, *DELIVERY_BACKOFF_S)):
        if pause:
            await asyncio.sleep(pause)  # back-off between tries
        try:
            await delivery.deliver(job, outcome, receipt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("job=%s delivery attempt %d failed: %s", job.id, attempt + 1, exc)
            continue
        return True
    log.error("job=%s could not be delivered after %d attempts; it stays in the journal and is retried "
              "at the next start", job.id, len(DELIVERY_BACKOFF_S) + 1)
    return False
