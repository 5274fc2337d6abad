"""The playground page at `/`: plain HTML, CSS and JavaScript served by the process (no CDN, no build)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
# Everything comes from this server; recordings and downloads are blob: URLs made by the page itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", _index),
        web.static("/static", STATIC_DIR, append_version=False),
    ]


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache",
                 "Referrer-Policy": "no-referrer"},
    )
