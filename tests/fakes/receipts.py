"""A Receipt kept in memory, for driving a Delivery directly (no journal behind it)."""

from __future__ import annotations


class MemoryReceipt:
    """Counts the messages the platform accepted; nothing was being sent when the job began."""

    def __init__(self, parts_sent: int = 0) -> None:
        self.parts_sent = parts_sent
        self.uncertain = False

    async def sending(self) -> None:
        self.uncertain = True

    async def part_sent(self) -> None:
        self.parts_sent += 1
        self.uncertain = False
