"""What every request meets before its route: the Host check, the body limit of its route, the body's
deadline, and a quiet answer when the client goes away.

aiohttp has one body limit for the whole app (`client_max_size`, applied by `request.read()`), no header
timeout and no body timeout. The app-wide limit is set to the webhooks' size, uploads stream through
openai_upload.py with their own budget, the keep-alive timer (which aiohttp starts when a connection
opens and closes it if no whole request head has arrived) serves as the header timeout, and the
watchdog here cuts bodies that trickle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from .http_state import STATE, SlowBody
from .openai_errors import ApiError

log = logging.getLogger(__name__)

API_PREFIX = "/v1/"
CHECK_EVERY_S = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without its port: "[::1]:8080" -> "::1", "localhost:80" -> "localhost"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def refusal(request: web.BaseRequest, status: int, sentence: str, *, code: str | None = None) -> web.Response:
    """One sentence, in OpenAI's error shape under /v1/."""
    if request.path.startswith(API_PREFIX):
        return ApiError(status, sentence, code=code).response()
    return web.Response(status=status, text=sentence)


@web.middleware
async def guard_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Without API keys the server trusts whoever reaches it on loopback, so it must be sure the caller is
    not a web page: a page's requests (and a DNS-rebinding name) carry the page's host name, never
    localhost. Signed webhooks prove themselves and are left alone."""
    state = request.app[STATE]
    header = request.headers.get("Host")
    if state.api_keys or header is None or request.path in state.signed_paths:
        return await handler(request)
    if is_loopback(host_name(header)):
        return await handler(request)
    log.warning("HTTP: refused a request for host %.80r (only loopback names without API keys)", header)
    return refusal(request, 421, "Without API keys this server answers only to localhost, 127.0.0.1 or [::1]: "
                   "open it by one of those names, or set CHATSCRIBE_API_KEYS.", code="misdirected_request")


def limit_body(upload_paths: frozenset[str]) -> Middleware:
    """A route that is not an upload reads at most CHATSCRIBE_HTTP_MAX_BODY_KB: a larger declared length
    is refused before a byte of it is read (uploads check theirs after authentication, with their own
    limit). Every body must keep arriving, or the request is cut (408)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = request.app[STATE].settings
        declared = request.content_length
        limit = settings.http_max_body_bytes
        if request.path not in upload_paths and declared is not None and declared > limit:
            log.warning("HTTP: refused a %d-byte body for %s (limit %d)", declared, request.path, limit)
            response = refusal(request, 413, f"This request is too large: {request.path} takes at most "
                               f"{limit // 1024} KB.", code="too_large")
            response.force_close()  # the rest of that body is not wanted on this connection
            return response
        if not request.can_read_body:
            return await handler(request)
        watch = _BodyWatch(request, settings.http_body_timeout_s, settings.http_min_body_kbps * 1024)
        try:
            return await handler(request)
        except SlowBody:
            log.warning("HTTP: cut a body to %s arriving at %.0f bytes/s (%d bytes in %.0f s)", request.path,
                        watch.rate(), watch.received(), watch.elapsed())
            response = refusal(request, 408, "The request body arrived too slowly and was cut off.",
                               code="timeout")
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()  # lingering would read on from the slow client
            return response
        finally:
            watch.stop()

    return middleware


class _BodyWatch:
    """After the grace period, the body must have come at `min_rate` bytes/s on average, else it is cut."""

    def __init__(self, request: web.Request, grace_s: float, min_rate: float) -> None:
        self._content = request.content
        self._loop = asyncio.get_running_loop()
        self._grace, self._min_rate = grace_s, min_rate
        self._start = self._loop.time()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(grace_s, self._check)

    def elapsed(self) -> float:
        return self._loop.time() - self._start

    def received(self) -> int:
        return self._content.total_bytes  # the request's own stream: counted from its first byte

    def rate(self) -> float:
        return self.received() / max(self.elapsed(), 1e-3)

    def _check(self) -> None:
        self._timer = None
        if self._content.is_eof() or self._content.exception() is not None:
            return
        if self.received() < self._min_rate * (self.elapsed() - self._grace):
            self._content.set_exception(SlowBody())
            return
        self._timer = self._loop.call_later(CHECK_EVERY_S, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@web.middleware
async def quiet_departures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A client that hangs up mid-request is one line at WARNING, not aiohttp's ERROR with a traceback."""
    try:
        return await handler(request)
    except ConnectionError:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            raise  # not this client's connection: a real error
        log.warning("HTTP: the client left during %s %s", request.method, request.path)
        return web.Response(status=400, text="The connection was closed before the request was complete.")


__all__ = ["guard_host", "host_name", "is_loopback", "limit_body", "quiet_departures", "refusal"]
