"""slack_sdk's AsyncWebClient, made to survive answers that are not Slack's JSON.

A proxy or load balancer in front of Slack may answer with an HTML or plain-text error page. slack_sdk
then either keeps the page as a string (and `validate()` fails with AttributeError on `str.get`) or raises
a SlackApiError whose `response` is the raw aiohttp response (and `exc.response.get(...)` fails the same
way). Either way no handler could answer the user. Here every such answer becomes an ordinary Slack error,
`{"ok": false, "error": "unexpected_answer"}`, after the transient ones (5xx) have been retried.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

UNEXPECTED_ANSWER = "unexpected_answer"
"""The error code given to an answer that was not Slack's JSON (a proxy's error page)."""
RETRIED_STATUSES = frozenset({500, 502, 503, 504})


class ServerErrorRetry(AsyncRetryHandler):
    """Retry (with slack_sdk's back-off) when Slack or a proxy before it answers a 5xx."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if response is not None and response.status_code in RETRIED_STATUSES:
            return True
        # A 5xx page labelled as JSON fails to parse inside slack_sdk, which then raises with the raw response.
        raw = getattr(error, "response", None) if isinstance(error, SlackApiError) else None
        return getattr(raw, "status", None) in RETRIED_STATUSES


def retry_handlers() -> list[AsyncRetryHandler]:
    return [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetry(max_retry_count=2)]


class SlackWebClient(AsyncWebClient):
    async def _request(self, *, http_verb: str, api_url: str, req_args: dict[str, Any]) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = await super()._request(http_verb=http_verb, api_url=api_url,
                                                            req_args=req_args)
        except SlackApiError as exc:
            if hasattr(exc.response, "get"):
                raise
            status = int(getattr(exc.response, "status", 0) or 0)
            return _unexpected(api_url, status, {})
        data = answer.get("data")
        if isinstance(data, bytes) or (isinstance(data, dict) and "ok" in data):
            return answer
        return _unexpected(api_url, int(answer.get("status_code") or 0), answer.get("headers") or {})


def _unexpected(api_url: str, status: int, headers: Any) -> dict[str, Any]:
    method = api_url.rstrip("/").rsplit("/", 1)[-1]
    log.warning("slack: %s answered HTTP %s without Slack's JSON (a proxy's error page?)", method, status)
    return {"data": {"ok": False, "error": UNEXPECTED_ANSWER}, "headers": headers, "status_code": status}


def error_code(exc: SlackApiError) -> str:
    """Slack's error code of a failed call, whatever the response object turned out to be."""
    response = exc.response
    getter = getattr(response, "get", None)
    try:
        code = getter("error") if getter is not None else None
    except (AttributeError, ValueError):  # binary or string bodies
        code = None
    return str(code or UNEXPECTED_ANSWER)


__all__ = ["UNEXPECTED_ANSWER", "SlackWebClient", "error_code", "retry_handlers"]
