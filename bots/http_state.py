"""State shared by the HTTP handlers, apart from the server module so that every route module can use it."""

from __future__ import annotations

import hmac
import os
import tempfile
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from chatscribe.core import Settings

from .base import Bot

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

FORM_OVERHEAD_BYTES = 1_000_000
"""Room for the multipart boundaries and the small text fields beside the file."""


@dataclass(eq=False)
class ServerState:
    """What the handlers share; the service arrives once the model is loaded."""

    settings: Settings
    bots: tuple[Bot, ...]
    api_keys: tuple[str, ...]
    metrics_registry: CollectorRegistry | None = None
    service: TranscriptionService | None = None
    signed_paths: set[str] = field(default_factory=set)
    """Webhook routes that authenticate each request by its platform's signature, whatever its Host."""
    loading: str = "model loading"
    """What /readyz says until the service has its engine: "converting model" while a checkpoint converts
    (set from the loading thread: one str assignment)."""

    def registry(self) -> CollectorRegistry:
        if self.metrics_registry is not None:
            return self.metrics_registry
        metrics = getattr(self.service, "metrics", None)
        return getattr(metrics, "registry", None) or REGISTRY

    def not_ready(self) -> list[str]:
        reasons = []
        if self.service is not None and self.service.closing:
            reasons.append("shutting down")
        elif self.service is None or not getattr(self.service, "engine_ready", True):
            reasons.append(self.loading)
        if not _writable(self.settings.data_dir):
            reasons.append(f"data dir {self.settings.data_dir} is not writable")
        for bot in self.bots:
            why = bot.not_ready()
            if why:
                reasons.append(f"{bot.platform}: {why}")
        return reasons


class SlowBody(Exception):
    """Set on a request's body stream when it arrives slower than the server accepts (slowloris)."""


STATE = web.AppKey("chatscribe_state", ServerState)
CALLER = web.RequestKey("chatscribe_caller", str)


def caller_id(request: web.Request) -> str:
    """Who is asking, for fairness and rate limits: the API key (as a digest) or the remote address."""
    return request.get(CALLER) or request.remote or "unknown"


def check_api_key(request: web.BaseRequest, keys: tuple[str, ...]) -> str | None:
    """The caller id for a valid Bearer key; None when the key is missing or wrong."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        given = _browser_socket_key(request)
        if not given:
            return None
    given = given.strip()
    # Compare against every key so the time taken does not reveal which prefix matched.
    matched = [k for k in keys if hmac.compare_digest(k.encode(), given.encode())]
    if not matched:
        return None
    return "key:" + sha256(matched[0].encode()).hexdigest()[:12]


def _browser_socket_key(request: web.BaseRequest) -> str:
    """Browsers cannot set headers on a WebSocket: OpenAI's browser clients send the key as the
    subprotocol `openai-insecure-api-key.<key>`, which only a WebSocket upgrade may use."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return ""
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        name, _, key = protocol.strip().partition("openai-insecure-api-key.")
        if not name and key:
            return key
    return ""


def _writable(path: os.PathLike[str] | str) -> bool:
    # os.access() says yes on read-only mounts for root; only creating a file tells the truth.
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False
