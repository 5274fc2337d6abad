"""The playground page at `/`: plain HTML, CSS and JavaScript served by the process (no CDN, no build)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
# Everything comes from this server; recordings and downloads are blob: URLs made by the page itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")
"""A Host header fit to name in the policy (anything else would change the policy's meaning)."""


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", _index),
        web.static("/static", STATIC_DIR, append_version=False),
    ]


async def _index(request: web.Request) -> web.FileResponse:
    # The live mode's WebSocket goes to this same host; CSP's 'self' covers ws: only in newer browsers.
    host = request.host if _HOST.fullmatch(request.host) else ""
    sockets = f"connect-src 'self' ws://{host} wss://{host}; " if host else ""
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={"Content-Security-Policy": sockets + CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache",
                 "Referrer-Policy": "no-referrer"},
    )
