"""A platform without a network: a Delivery that records answers, for driving the service directly."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from chatscribe.core.errors import ChatscribeError
from chatscribe.core.jobs.journal import Job, ProgressUpdate, Receipt
from chatscribe.core.media import Fetch, MediaRequest
from chatscribe.core.transcript import Transcript


@dataclass
class Answer:
    job_id: str
    chat_id: str
    outcome: Transcript | ChatscribeError


@dataclass
class Collector:
    """Media live in `files` by name; the reference of a request is {"file": name}."""

    files: dict[str, bytes] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    progress_updates: list[tuple[str, ProgressUpdate]] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)
    hold_delivery: asyncio.Event | None = None
    """While set to an unset Event, deliveries wait: a process that dies before it sends."""
    hold_fetch: asyncio.Event | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def fetcher(self, reference: Mapping[str, str]) -> Fetch:
        name = reference["file"]

        async def fetch(limit: int) -> bytes:
            self.fetches.append(name)
            if self.hold_fetch is not None:
                await self.hold_fetch.wait()
            return self.files[name]

        return fetch

    def request(self, name: str, *, chat: str = "chat", user: str | None = None, platform: str = "fake",
                file_id: str | None = None) -> MediaRequest:
        return MediaRequest(platform=platform, chat_id=chat, user_id=user or chat,
                            fetch=self.fetcher({"file": name}), file_name=name, platform_file_id=file_id,
                            reference={"file": name})

    async def progress(self, job: Job, update: ProgressUpdate) -> None:
        self.progress_updates.append((job.id, update))

    async def deliver(self, job: Job, outcome: Transcript | ChatscribeError, receipt: Receipt) -> None:
        if self.hold_delivery is not None:
            await self.hold_delivery.wait()
        await receipt.part_sent()
        async with self.changed:
            self.answers.append(Answer(job.id, job.request.chat_id, outcome))
            self.changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 60) -> list[Answer]:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.answers) >= count)
        return self.answers
