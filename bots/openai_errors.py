"""OpenAI's error shape for every refusal of the /v1 API, mapped from the core's error types."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chatscribe.core import Busy, CannotTranslate, ChatscribeError, MediaError, MediaTooLarge, NotReady, ShuttingDown


@dataclass(eq=False)
class ApiError(Exception):
    """An answer in OpenAI's error shape. Mutable: Python writes __traceback__ on whatever it raises."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    retry_after_s: float | None = None

    def response(self) -> web.Response:
        headers = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return web.json_response(self.body(), status=self.status, headers=headers)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


INTERNAL = ApiError(500, "Something went wrong while transcribing that file.", type="server_error")



def not_found_response(status: int, reason: str) -> web.Response:
    """aiohttp's own 404/405 under /v1/, in the error shape OpenAI clients parse."""
    return ApiError(status, f"{reason}: see GET /v1/models and POST /v1/audio/transcriptions.",
                    code="not_found" if status == 404 else "method_not_allowed").response()


def missing_key_response() -> web.Response:
    return ApiError(
        401, "Incorrect or missing API key: send it as 'Authorization: Bearer <key>' "
        "(one of CHATSCRIBE_API_KEYS).", code="invalid_api_key",
    ).response()


def error_for(exc: ChatscribeError) -> ApiError:
    """The HTTP face of a core error; the message is the same sentence a chat user would read."""
    message = exc.user_message
    if isinstance(exc, MediaTooLarge):
        return ApiError(413, message, param="file", code=exc.code)
    if isinstance(exc, MediaError):
        return ApiError(400, message, param="file", code=exc.code)
    if isinstance(exc, CannotTranslate):  # the request asks what this model cannot do
        return ApiError(400, message, param="model", code=exc.code)
    if isinstance(exc, Busy):
        return ApiError(429, message, type="rate_limit_error", code=exc.code, retry_after_s=exc.retry_after_s)
    if isinstance(exc, NotReady | ShuttingDown):
        return ApiError(503, message, type="server_error", code=exc.code, retry_after_s=15)
    return ApiError(500, message, type="server_error", code=exc.code)
