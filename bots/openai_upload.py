"""Reading a multipart upload with one byte budget per request: counted as it arrives, never held whole
past the limit, and refused as soon as it is known to be too large, to have too many parts, or to be one
the budget cannot cover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

from chatscribe.core import MAX_KNOWN_SPEAKERS, Fetch, MediaTooLarge, sentences

from .http_state import FORM_OVERHEAD_BYTES
from .openai_errors import ApiError

FIELD_LIMIT_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
FIELD_CHUNK_BYTES = 8 * 1024
"""aiohttp reads a part of unknown length ahead by the size asked for: small for the small parts."""
MAX_PARTS = 32
"""OpenAI's form has about ten fields; a form with more parts than this is not a client of the API."""
FIELDS = frozenset({
    "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
    "timestamp_granularities", "stream", "chunking_strategy", "include[]",
    "speakers", "min_speakers", "max_speakers",  # chatscribe's own: speaker labels for any format
})
"""The text fields read; any other part is read past without being kept."""
KNOWN_NAMES = frozenset({"known_speaker_names[]", "known_speaker_names"})
KNOWN_REFERENCES = frozenset({"known_speaker_references[]", "known_speaker_references"})
REFERENCE_LIMIT_BYTES = 2_000_000
"""One known speaker's clip as a data URL: 10 s of 44.1 kHz mono WAV fits, base64 and all."""


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    file_name: str | None
    content_type: str | None
    fields: dict[str, str] = field(default_factory=dict)
    granularities: tuple[str, ...] = ()
    known_names: tuple[str, ...] = ()
    known_references: tuple[str, ...] = ()
    """Data URLs, in the order of known_names (bots/openai_speakers.py decodes them)."""


def check_declared_length(request: web.BaseRequest, limit: int) -> None:
    declared = request.content_length
    if declared is not None and declared > limit + FORM_OVERHEAD_BYTES:
        raise MediaTooLarge(declared, limit)


async def read_upload(request: web.Request, limit: int) -> Upload:
    """Read the multipart form, holding at most `limit` bytes of file (413 beyond it).

    The whole request, boundaries and every part included, must fit in `limit` plus FORM_OVERHEAD_BYTES.
    """
    if request.content_type != "multipart/form-data":
        raise ApiError(400, "Send the audio as multipart/form-data with the file in the field 'file'.",
                       param="file")
    check_declared_length(request, limit)
    budget = _Budget(request, limit)
    fields: dict[str, str] = {}
    granularities: list[str] = []
    known: dict[str, list[str]] = {"names": [], "references": []}
    data: bytes | None = None
    file_name = content_type = None
    try:
        async for part in _parts(request, budget):
            name = part.name or ""
            if name == "file" and data is None:
                data = await _read_part(part, limit, budget, CHUNK_BYTES, too_large=MediaTooLarge(None, limit))
                file_name, content_type = part.filename, part.headers.get("Content-Type")
            elif name in FIELDS:
                value = await _read_part(part, FIELD_LIMIT_BYTES, budget, FIELD_CHUNK_BYTES,
                                         too_large=_field_too_large(name))
                text = value.decode("utf-8", errors="replace").strip()
                if name in ("timestamp_granularities[]", "timestamp_granularities"):
                    granularities.append(text)
                else:
                    fields[name] = text
            elif name in KNOWN_NAMES or name in KNOWN_REFERENCES:
                await _read_known(part, name, known, budget)
            else:  # unknown, or a second file: read past, counted, never kept
                await _skip_part(part, budget)
    except (ValueError, AssertionError, RuntimeError) as exc:  # aiohttp's words for a malformed body
        raise ApiError(400, "The multipart form could not be read.", param="file") from exc
    if not data:
        raise ApiError(400, "No audio was uploaded: send it in the multipart field 'file'.", param="file")
    return Upload(data, file_name, content_type, fields, tuple(granularities),
                  tuple(known["names"]), tuple(known["references"]))


async def _read_known(part: BodyPartReader, name: str, known: dict[str, list[str]], budget: _Budget) -> None:
    """One known_speaker_names[] or known_speaker_references[] entry, refused past the count or size limit."""
    kind, limit = ("names", FIELD_LIMIT_BYTES) if name in KNOWN_NAMES else ("references", REFERENCE_LIMIT_BYTES)
    param = f"known_speaker_{kind}"
    if len(known[kind]) >= MAX_KNOWN_SPEAKERS:  # (OpenAI takes 4) refused before the next is read
        raise ApiError(400, str(sentences.known_speakers_refused(MAX_KNOWN_SPEAKERS)), param=param)
    too_large = ApiError(400, f"A known speaker's reference may be at most {REFERENCE_LIMIT_BYTES // 1_000_000} MB "
                         "as a data URL: send a 2–10 s clip, compressed (e.g. Opus or MP3) or as 16 kHz mono WAV.",
                         param=param) if kind == "references" else _field_too_large(name)
    chunk = CHUNK_BYTES if kind == "references" else FIELD_CHUNK_BYTES
    value = await _read_part(part, limit, budget, chunk, too_large=too_large)
    known[kind].append(value.decode("utf-8", errors="replace").strip())


class _Budget:
    """Bytes the whole request has brought in so far (aiohttp counts what it received), against one limit."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self._content = request.content  # each request has its own stream: its count starts at 0
        self._limit = limit
        self.parts = 0

    def check(self) -> None:
        if self._content.total_bytes > self._limit + FORM_OVERHEAD_BYTES:
            raise MediaTooLarge(None, self._limit)

    def count_part(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(400, f"The form has more than {MAX_PARTS} parts: send the file and the "
                           "API's fields only.", param="file")


async def _parts(request: web.Request, budget: _Budget) -> AsyncIterator[BodyPartReader]:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        budget.count_part()
        budget.check()
        if isinstance(part, BodyPartReader):
            yield part
        else:  # a nested multipart: nothing the API sends; read past it
            while (inner := await part.next()) is not None:
                budget.count_part()
                if isinstance(inner, BodyPartReader):
                    await _skip_part(inner, budget)


async def _read_part(part: BodyPartReader, limit: int, budget: _Budget, chunk_bytes: int, *,
                     too_large: Exception) -> bytes:
    """Read one part, stopping (and raising `too_large`) as soon as it passes `limit` bytes."""
    buffer = bytearray()
    while chunk := await part.read_chunk(chunk_bytes):
        buffer += chunk
        if len(buffer) > limit:
            raise too_large
        budget.check()
    return bytes(buffer)


async def _skip_part(part: BodyPartReader, budget: _Budget) -> None:
    while await part.read_chunk(FIELD_CHUNK_BYTES):
        budget.check()


def _field_too_large(name: str) -> ApiError:
    return ApiError(400, f"The field '{name}' is too long.", param=name)


def fetcher(data: bytes) -> Fetch:
    async def fetch(max_bytes: int) -> bytes:
        if len(data) > max_bytes:
            raise MediaTooLarge(len(data), max_bytes)
        return data

    return fetch
