"""Checking a request to /slack/events before bolt sees it.

bolt verifies the signature itself, but only after the whole body was read, it answers 500 with a
traceback for a timestamp that is not a number, and it logs the whole body of every request it rejects
(at INFO, on a logger whose level it set itself). Here the headers are checked before a byte of the body
is read, the body is read within the route's limit, and a rejection is one short WARNING line.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

MAX_AGE_S = 300
"""Slack's own rule: a request signed more than five minutes ago may be a replay."""


async def verified(request: web.Request, signing_secret: str) -> web.Response | None:
    """None when the request is signed by Slack (its body is then read and cached on the request);
    otherwise the answer to send, after one log line."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    problem = _header_problem(timestamp, signature)
    if problem:
        return _refuse(request, 401, problem)
    try:
        body = await request.read()  # bounded by the app's client_max_size (the webhooks' limit)
    except web.HTTPRequestEntityTooLarge:
        return _refuse(request, 413, "the body is larger than the limit for webhooks")
    if not SignatureVerifier(signing_secret).is_valid(body, timestamp, signature):
        return _refuse(request, 401, "the signature does not match SLACK_SIGNING_SECRET")
    return None


def _header_problem(timestamp: str, signature: str) -> str | None:
    if not timestamp or not signature:
        return "X-Slack-Request-Timestamp or X-Slack-Signature is missing"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Slack-Request-Timestamp is not a Unix time"
    if abs(time.time() - int(timestamp)) > MAX_AGE_S:
        return "X-Slack-Request-Timestamp is more than five minutes away"
    return None


def _refuse(request: web.Request, status: int, reason: str) -> web.Response:
    log.warning("slack: refused a request to %s from %s: %s (%s bytes declared)", request.path,
                request.remote, reason, request.content_length)
    response = web.Response(status=status, text="This request is not signed by Slack.")
    if status == 413:
        response.text = "This request is larger than a Slack event can be."
    return response


__all__ = ["verified"]
