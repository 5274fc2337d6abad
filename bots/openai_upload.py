"""Reading a multipart upload with a byte limit: counted chunk by chunk, never held whole past the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

from chatscribe.core.errors import MediaTooLarge
from chatscribe.core.media import Fetch

from .http_state import FORM_OVERHEAD_BYTES
from .openai_errors import ApiError

FIELD_LIMIT_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    file_name: str | None
    content_type: str | None
    fields: dict[str, str] = field(default_factory=dict)
    granularities: tuple[str, ...] = ()


def check_declared_length(request: web.BaseRequest, limit: int) -> None:
    declared = request.content_length
    if declared is not None and declared > limit + FORM_OVERHEAD_BYTES:
        raise MediaTooLarge(declared, limit)


async def read_upload(request: web.Request, limit: int) -> Upload:
    """Read the multipart form, holding at most `limit` bytes of file (413 beyond it)."""
    if request.content_type != "multipart/form-data":
        raise ApiError(400, "Send the audio as multipart/form-data with the file in the field 'file'.",
                       param="file")
    check_declared_length(request, limit)
    fields: dict[str, str] = {}
    granularities: list[str] = []
    data: bytes | None = None
    file_name = content_type = None
    try:
        async for part in _parts(request):
            name = part.name or ""
            if name == "file":
                data = await _read_part(part, limit, too_large=MediaTooLarge(None, limit))
                file_name, content_type = part.filename, part.headers.get("Content-Type")
            else:
                value = await _read_part(part, FIELD_LIMIT_BYTES, too_large=_field_too_large(name))
                text = value.decode("utf-8", errors="replace").strip()
                if name in ("timestamp_granularities[]", "timestamp_granularities"):
                    granularities.append(text)
                else:
                    fields[name] = text
    except (ValueError, AssertionError, RuntimeError) as exc:  # aiohttp's words for a malformed body
        raise ApiError(400, "The multipart form could not be read.", param="file") from exc
    if not data:
        raise ApiError(400, "No audio was uploaded: send it in the multipart field 'file'.", param="file")
    return Upload(data, file_name, content_type, fields, tuple(granularities))


async def _parts(request: web.Request) -> AsyncIterator[BodyPartReader]:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader):
            yield part


async def _read_part(part: BodyPartReader, limit: int, *, too_large: Exception) -> bytes:
    """Read one part, stopping (and raising `too_large`) as soon as it passes `limit` bytes."""
    buffer = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        buffer += chunk
        if len(buffer) > limit:
            raise too_large
    return bytes(buffer)


def _field_too_large(name: str) -> ApiError:
    return ApiError(400, f"The field '{name}' is too long.", param=name)


def fetcher(data: bytes) -> Fetch:
    async def fetch(max_bytes: int) -> bytes:
        if len(data) > max_bytes:
            raise MediaTooLarge(len(data), max_bytes)
        return data

    return fetch
