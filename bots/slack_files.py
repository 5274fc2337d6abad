"""Slack's private files: downloaded with the bot token, which goes to Slack's own hosts and nowhere else.

A file URL pointing anywhere else is refused; redirects are followed with the token only while they stay
on those hosts. Slack answers a request it will not serve (a token without files:read) with its sign-in
page, which is reported as such instead of as an unreadable file.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

import aiohttp

from chatscribe.core import DownloadFailed, MediaTooLarge, Sentence, sentences

log = logging.getLogger(__name__)

SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
"""Where Slack serves url_private_download; the bot token is sent to no other host (plus SLACK_API_URL's)."""
MAX_REDIRECTS = 3
SCOPE_HINT = Sentence(
    "I couldn't download that file: Slack answered with its sign-in page instead of the file. "
    "The app needs the `files:read` scope: add it and reinstall the app."
)


class SlackFiles:
    def __init__(self, token: str, *, api_url: str) -> None:
        self._token = token
        # The configured Web API host (tests, proxies) may get the token too: it already does for API calls.
        self._token_origins = {("https", host, 443) for host in SLACK_FILE_HOSTS} | {_origin(api_url)}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def download(self, url: str, max_bytes: int) -> bytes:
        """url_private_download with the bot token, which goes to Slack's file host and nowhere else."""
        if _origin(url) not in self._token_origins:
            log.warning("slack: refused to fetch a file from %s (not a Slack file host)", urlsplit(url).hostname)
            raise DownloadFailed(Sentence("I won't download that file: its link doesn't point to Slack's file server."))
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600, sock_read=60))
        try:
            for _ in range(MAX_REDIRECTS + 1):
                # The token rides along only to Slack's own hosts, also across redirects.
                headers = {"Authorization": f"Bearer {self._token}"} if _origin(url) in self._token_origins else {}
                async with self._session.get(url, headers=headers, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    return await _read_media(response, max_bytes)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadFailed(sentences.download_failed("Slack"),
                                 detail=type(exc).__name__) from exc
        raise DownloadFailed(Sentence("I couldn't download that file: Slack kept redirecting."))


async def _read_media(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if response.status != 200:
        raise DownloadFailed(Sentence("Slack wouldn't hand over that file (HTTP {status}).", status=response.status))
    if response.content_length is not None and response.content_length > max_bytes:
        raise MediaTooLarge(response.content_length, max_bytes)
    if response.content_type == "text/html":
        raise DownloadFailed(SCOPE_HINT, detail="got an HTML page instead of the file")
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > max_bytes:
            raise MediaTooLarge(None, max_bytes)
    if data[:64].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise DownloadFailed(SCOPE_HINT, detail="got an HTML page instead of the file")
    return bytes(data)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)
