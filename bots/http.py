"""The one aiohttp server of a process: health, readiness, metrics, the bots' webhooks, the
OpenAI-compatible API (openai_api.py) and the playground page (playground.py).

The entry point may start this server before the model has loaded, so that probes answer early:
`create_app()` accepts no service yet, `/readyz` says "model loading" until `attach_service()` is called.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from chatscribe.core.config import Settings
from chatscribe.core.errors import ConfigError

from . import openai_api, playground
from .base import Bot

if TYPE_CHECKING:
    from chatscribe.core.service import TranscriptionService

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"
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

    def registry(self) -> CollectorRegistry:
        if self.metrics_registry is not None:
            return self.metrics_registry
        metrics = getattr(self.service, "metrics", None)
        return getattr(metrics, "registry", None) or REGISTRY

    def not_ready(self) -> list[str]:
        reasons = []
        if self.service is None or not getattr(self.service, "engine_ready", True):
            reasons.append("model loading")
        if not _writable(self.settings.data_dir):
            reasons.append(f"data dir {self.settings.data_dir} is not writable")
        for bot in self.bots:
            why = bot.not_ready()
            if why:
                reasons.append(f"{bot.platform}: {why}")
        return reasons


STATE = web.AppKey("chatscribe_state", ServerState)


def create_app(
    *,
    service: TranscriptionService | None = None,
    settings: Settings,
    bots: Sequence[Bot] = (),
    metrics_registry: CollectorRegistry | None = None,
) -> web.Application:
    """The whole HTTP surface. Raises ConfigError rather than serve the API unauthenticated to a network."""
    keys = settings.api_key_list
    if not keys and not is_loopback(settings.http_host):
        raise ConfigError(
            f"CHATSCRIBE_HTTP_HOST={settings.http_host} is reachable from other machines but "
            "CHATSCRIBE_API_KEYS is empty: set one or more API keys (comma-separated), "
            "or bind to 127.0.0.1."
        )
    state = ServerState(settings=settings, bots=tuple(bots), api_keys=keys, metrics_registry=metrics_registry)
    app = web.Application(
        client_max_size=settings.max_file_bytes + FORM_OVERHEAD_BYTES,
        middlewares=[_security_headers, _authenticate],
    )
    app[STATE] = state
    app.add_routes([
        web.get("/healthz", _healthz),
        web.get("/readyz", _readyz),
        web.get("/metrics", _metrics),
    ])
    app.add_routes(openai_api.routes())
    app.add_routes(playground.routes())
    for bot in bots:
        app.add_routes(bot.routes())
    if service is not None:
        attach_service(app, service)
    return app


def attach_service(app: web.Application, service: TranscriptionService) -> None:
    """Hand the loaded service to a running app: /readyz turns ready and the API starts answering."""
    app[STATE].service = service


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def caller_id(request: web.Request) -> str:
    """Who is asking, for fairness and rate limits: the API key (as a digest) or the remote address."""
    return str(request.get("caller") or request.remote or "unknown")


def check_api_key(request: web.BaseRequest, keys: tuple[str, ...]) -> str | None:
    """The caller id for a valid Bearer key; None when the key is missing or wrong."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    given = given.strip()
    # Compare against every key so the time taken does not reveal which prefix matched.
    matched = [k for k in keys if hmac.compare_digest(k.encode(), given.encode())]
    if not matched:
        return None
    return "key:" + sha256(matched[0].encode()).hexdigest()[:12]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path.startswith(API_PREFIX) and state.api_keys:
        caller = check_api_key(request, state.api_keys)
        if caller is None:
            return openai_api.missing_key_response()
        request["caller"] = caller
    return await handler(request)


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    reasons = request.app[STATE].not_ready()
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[STATE].registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _writable(path: os.PathLike[str] | str) -> bool:
    # os.access() says yes on read-only mounts for root; only creating a file tells the truth.
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


class HttpServer:
    """Runs an app on host:port with aiohttp's runner; owns nothing else."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        # Access logs would write every caller's address at INFO; errors are logged by the handlers.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        log.info("HTTP server listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with 0)."""
        server: Any = self._site._server if self._site else None  # noqa: SLF001
        if server and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port
