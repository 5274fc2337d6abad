"""The one aiohttp server of a process: health, readiness, metrics, the bots' webhooks, the
OpenAI-compatible API (openai_api.py) and the playground page (playground.py).

The entry point may start this server before the model has loaded, so that probes answer early:
`create_app()` accepts no service yet, `/readyz` says "model loading" until `attach_service()` is called.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from chatscribe.core import ConfigError, Settings

from . import openai_api, openai_errors, playground, realtime
from .base import Bot
from .http_guards import API_PREFIX, guard_host, is_loopback, limit_body, quiet_departures
from .http_state import CALLER, STATE, ServerState, caller_id, check_api_key

__all__ = ["HttpServer", "ServerState", "attach_service", "caller_id", "create_app", "is_loopback"]

if TYPE_CHECKING:
    from chatscribe.core import TranscriptionService

log = logging.getLogger(__name__)

LINGERING_S = 2.0
"""After an early answer (413, 429), how long the rest of a body the client still sends is read and
dropped so that the client sees the answer rather than a reset; aiohttp's 10 s gives slow clients more."""


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
    # client_max_size bounds what request.read()/text()/json() take: the webhooks' limit. Uploads do not
    # go through read(); they stream with their own budget (openai_upload.py).
    app = web.Application(
        client_max_size=settings.http_max_body_bytes,
        middlewares=[_security_headers, quiet_departures, guard_host, limit_body(openai_api.UPLOAD_PATHS),
                     _authenticate],
    )
    app[STATE] = state
    app.add_routes([
        web.get("/healthz", _healthz),
        web.get("/readyz", _readyz),
        web.get("/metrics", _metrics),
    ])
    app.add_routes(openai_api.routes())
    app.add_routes(playground.routes())
    app.add_routes(realtime.routes())
    for bot in bots:
        routes = bot.routes()
        app.add_routes(routes)
        state.signed_paths.update(route.path for route in routes)
    if service is not None:
        attach_service(app, service)
    return app


def attach_service(app: web.Application, service: TranscriptionService) -> None:
    """Hand the loaded service to a running app: /readyz turns ready and the API starts answering."""
    app[STATE].service = service


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    state = request.app[STATE]
    if state.api_keys:
        caller = check_api_key(request, state.api_keys)
        if caller is None:
            return openai_errors.missing_key_response()
        request[CALLER] = caller
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        return openai_errors.not_found_response(exc.status, exc.reason)


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:  # a stream's headers are already sent
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


class HttpServer:
    """Runs an app on host:port with aiohttp's runner; owns nothing else."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        settings = self.app[STATE].settings
        # Access logs would write every caller's address at INFO; errors are logged by the handlers.
        # aiohttp's keep-alive timer also runs while a request head is still arriving, so it is the
        # header timeout too (slowloris); bodies have theirs in http_guards.py.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     keepalive_timeout=settings.http_header_timeout_s, lingering_time=LINGERING_S)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        log.debug("HTTP server listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with 0)."""
        if self._runner is not None and self._runner.addresses:
            return int(self._runner.addresses[0][1])
        return self._port
