"""The one contract every platform bot keeps, so the entry point can run them side by side."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Bot(Protocol):
    platform: str
    """"telegram", "discord" or "slack": also the `platform` of its MediaRequests and jobs."""

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes to mount on the shared aiohttp server (webhooks); may be empty."""
        ...

    async def start(self) -> None:
        """Connect and begin serving; return once running (background tasks are the bot's own)."""
        ...

    async def stop(self) -> None:
        """Stop taking new events and disconnect; the service's journal keeps unfinished work."""
        ...

    def not_ready(self) -> str | None:
        """None when connected to the platform, else a short reason for /readyz."""
        ...
