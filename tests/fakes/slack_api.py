"""A fake Slack on 127.0.0.1: the Web API methods chatscribe calls, private file URLs, response_url, and
the Slack side of HTTP mode (signed event, slash command and shortcut requests).

It speaks real HTTP so slack_sdk's AsyncWebClient (base_url pointed here) runs unchanged. Every API call
is recorded; a 429 with Retry-After can be injected; private files demand `Authorization: Bearer <token>`
and otherwise answer the HTML login page Slack serves to a client without the right scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from chatscribe.adapters.slack import unescape

SECTION_LIMIT = 3000
BLOCKS_LIMIT = 13_000
"""Past this many characters of block text Slack answers msg_blocks_too_long."""
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to your workspace</body></html>"
JSON_FIELDS = ("blocks", "attachments", "files")


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorized: bool
    error: str | None = None
    """What Slack answered instead of ok (ratelimited, not_in_channel, …); None when the call was accepted."""
    at: float = field(default_factory=time.monotonic)
    """When it arrived (monotonic seconds): the pace of status edits."""


@dataclass
class StoredFile:
    info: dict[str, Any]
    data: bytes


@dataclass
class Upload:
    """A file that arrived through the files_upload_v2 calls and was shared."""

    file_id: str
    filename: str
    title: str
    data: bytes = b""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class FakeSlack:
    token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-1-fake-app-token"
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    team_id: str = "T0001"
    calls: list[Call] = field(default_factory=list)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """channel -> messages, oldest first (seeded by tests and posted by the bot)."""
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    """Bodies posted to response_url."""
    responses_by_url: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    downloads: list[tuple[str, bool]] = field(default_factory=list)
    """(file id, Bearer token was right) per private file request."""
    outside: set[str] = field(default_factory=set)
    """Channels the bot is not a member of: reading or posting there answers not_in_channel."""
    files_read_scope: bool = True
    """False: the token lacks files:read, so private file URLs answer the sign-in page."""
    download_gate: asyncio.Event | None = None
    """When set to an unset Event, file downloads wait for it (to prove an ack did not wait on work)."""
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    """What the app sent back over the Socket Mode connection (acks with their payloads)."""
    members: dict[str, set[str]] = field(default_factory=dict)
    """channel -> its members; a channel not listed has the bot and UALICE (conversations.members)."""
    creators: dict[str, str] = field(default_factory=dict)
    """channel -> the user who created it (conversations.info); UCREATOR when not listed."""
    admins: set[str] = field(default_factory=set)
    """Workspace admins (users.info is_admin)."""
    owners: set[str] = field(default_factory=set)
    """Workspace owners (users.info is_owner)."""
    locales: dict[str, str] = field(default_factory=dict)
    """user -> the locale users.info gives with include_locale (e.g. "de-DE"); absent: "en-US"."""
    locale_refused: bool = False
    """True: users.info with include_locale answers missing_scope (a token without users:read)."""
    locale_unreachable: bool = False
    """True: users.info with include_locale closes the connection without an answer (a network hiccup)."""
    file_status: dict[str, int] = field(default_factory=dict)
    """file id -> the HTTP status its private URL answers instead of the file (404: deleted meanwhile)."""
    redirect_loop: set[str] = field(default_factory=set)
    """File ids whose private URL redirects to itself, again and again."""
    _broken: dict[str, list[tuple[int, str, bytes]]] = field(default_factory=dict)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _rate_limits: dict[str, float] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _clock: float = field(default_factory=lambda: float(int(time.time()) - 3600))
    _changed: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    url: str = ""

    # -- lifecycle ------------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        """`async with Fake() as fake:` serves it on 127.0.0.1 for the block."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{team}-{file_id}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{key}", self._response)
        app.router.add_get("/socket-mode", self._socket_mode)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # -- test set-up ----------------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes, *, mimetype: str, filetype: str = "", subtype: str | None = None,
                 url: str | None = None, size: int | None = None) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        info: dict[str, Any] = {
            "id": file_id, "name": name, "title": name, "mimetype": mimetype, "filetype": filetype,
            "size": len(data) if size is None else size, "user": "UALICE", "mode": "hosted",
            "url_private": f"{self.url}/files-pri/{self.team_id}-{file_id}/{name}",
            "url_private_download": url or f"{self.url}/files-pri/{self.team_id}-{file_id}/download",
        }
        if subtype:
            info["subtype"] = subtype
        self.files[file_id] = StoredFile(info, data)
        return info

    def add_message(self, channel: str, *, user: str = "UALICE", text: str = "",
                    files: list[dict[str, Any]] | None = None, thread_ts: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": user, "text": text, "ts": self._next_ts()}
        if files:
            message.update(subtype="file_share", files=files, upload=True)
        if thread_ts:
            message["thread_ts"] = thread_ts
        for file in files or ():
            share = {"ts": message["ts"], **({"thread_ts": thread_ts} if thread_ts else {})}
            self.files[file["id"]].info.setdefault("shares", {}).setdefault("public", {})[channel] = [share]
        self.history.setdefault(channel, []).append(message)
        return message

    def permalink(self, channel: str, ts: str, thread_ts: str | None = None) -> str:
        link = f"https://fake-team.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return f"{link}?thread_ts={thread_ts}&cid={channel}" if thread_ts else link

    def rate_limit_next(self, method: str, retry_after_s: float = 1) -> None:
        self._rate_limits[method] = retry_after_s

    def break_next(self, method: str, *, status: int = 502, content_type: str = "text/html",
                   body: bytes = b"<html><body><h1>502 Bad Gateway</h1></body></html>", times: int = 1) -> None:
        """The next `times` calls of method get what a proxy in front of Slack answers, not Slack's JSON."""
        self._broken.setdefault(method, []).extend([(status, content_type, body)] * times)

    def response_url(self) -> str:
        return f"{self.url}/response/{next(self._ids)}"

    # -- assertions -----------------------------------------------------------------------------------
    async def response_at(self, response_url: str) -> str:
        """The text of the first answer posted to a command's response_url, once it has come."""
        bodies = await self.wait_for(lambda: self.responses_by_url.get(response_url))
        return str(bodies[0].get("text", ""))

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.history.get(channel, [])
                if m.get("bot_id") == self.bot_id and (thread_ts is None or m.get("thread_ts") == thread_ts)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 60) -> Any:
        """Wait until predicate() is truthy (re-checked on every request) and return its value."""
        assert self._changed is not None
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    # -- handlers -------------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        token = self.app_token if method == "apps.connections.open" else self.token
        authorized = request.headers.get("Authorization") == f"Bearer {token}"
        call = Call(method, params, authorized)
        self.calls.append(call)
        try:
            if method in self._rate_limits:
                retry_after = self._rate_limits.pop(method)
                call.error = "ratelimited"
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": f"{retry_after:g}"})
            if self._broken.get(method):
                status, content_type, body = self._broken[method].pop(0)
                call.error = f"http_{status}"
                return web.Response(status=status, body=body, headers={"Content-Type": content_type})
            if not authorized:
                raise _ApiError("invalid_auth")
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                call.error = "unknown_method"
                return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
            return web.json_response({"ok": True, **handler(params)})
        except _ApiError as exc:
            call.error = str(exc)
            return web.json_response({"ok": False, "error": str(exc)})
        except _Dropped:
            call.error = "connection_closed"
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=502)  # never sent: the connection is gone
        finally:
            await self._notify()

    def _m_auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://fake-team.slack.com/", "team": "Fake", "user": "chatscribe",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id}

    def _m_apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws{self.url.removeprefix('http')}/socket-mode?ticket={next(self._ids)}"}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        _check_blocks(p)
        message = {"type": "message", "subtype": "bot_message", "bot_id": self.bot_id, "user": self.bot_user_id,
                   "text": p.get("text", ""), "blocks": p.get("blocks") or [], "ts": self._next_ts()}
        if p.get("thread_ts"):
            message["thread_ts"] = p["thread_ts"]
        self._channel(p["channel"]).append(message)
        return {"channel": p["channel"], "ts": message["ts"], "message": message}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        _check_blocks(p)
        self._channel(p["channel"])
        self.ephemeral.append(p)
        return {"message_ts": self._next_ts()}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        _check_blocks(p)
        for message in self._channel(p["channel"]):
            if message["ts"] == p["ts"] and message.get("bot_id") == self.bot_id:
                message.update(text=p.get("text", ""), blocks=p.get("blocks") or [], edited=True)
                return {"channel": p["channel"], "ts": p["ts"]}
        raise _ApiError("message_not_found")

    def _m_chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": p["channel"], "permalink": self.permalink(p["channel"], p["message_ts"])}

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        messages = [m for m in self._channel(p["channel"]) if "thread_ts" not in m or m["thread_ts"] == m["ts"]]
        if p.get("latest"):
            inclusive = str(p.get("inclusive")).lower() in ("1", "true")
            messages = [m for m in messages
                        if float(m["ts"]) < float(p["latest"]) or (inclusive and m["ts"] == p["latest"])]
        newest_first = list(reversed(messages))[: int(p.get("limit", 100))]
        return {"messages": newest_first, "has_more": False}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        thread = [m for m in self._channel(p["channel"]) if p["ts"] in (m["ts"], m.get("thread_ts"))]
        if not thread:
            raise _ApiError("thread_not_found")
        return {"messages": thread, "has_more": False}

    def _m_conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        self._channel(p["channel"])
        members = sorted(self.members.get(p["channel"], {"UALICE", self.bot_user_id}))
        start, limit = int(p.get("cursor") or 0), int(p.get("limit") or 100)
        page, rest = members[start:start + limit], members[start + limit:]
        return {"members": page, "response_metadata": {"next_cursor": str(start + limit) if rest else ""}}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p["channel"]
        if not channel.startswith(("C", "G", "D")):
            raise _ApiError("channel_not_found")
        return {"channel": {"id": channel, "is_im": channel.startswith("D"), "is_private": channel.startswith("G"),
                            "is_member": channel not in self.outside,
                            "creator": self.creators.get(channel, "UCREATOR")}}

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = p["user"]
        found = {"id": user, "is_admin": user in self.admins or user in self.owners,
                 "is_owner": user in self.owners, "is_primary_owner": False, "is_bot": False}
        if str(p.get("include_locale", "")).lower() in ("1", "true"):
            if self.locale_unreachable:
                raise _Dropped
            if self.locale_refused:
                raise _ApiError("missing_scope")
            found["locale"] = self.locales.get(user, "en-US")
        return {"user": found}

    def _m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(p["file"])
        if stored is None:
            raise _ApiError("file_not_found")
        return {"file": stored.info}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids):08d}"
        self.uploads[file_id] = Upload(file_id, p["filename"], p["filename"])
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        done = []
        for item in p["files"]:
            upload = self.uploads[item["id"]]
            upload.title = item.get("title") or upload.filename
            upload.channel, upload.thread_ts = p.get("channel_id"), p.get("thread_ts")
            upload.initial_comment = p.get("initial_comment")
            done.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
        return {"files": done}

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]].data = await request.read()
        await self._notify()
        return web.Response(text=f"OK - {request.content_length}")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        self.downloads.append((file_id, authorized))
        await self._notify()
        if self.download_gate is not None:
            await self.download_gate.wait()
        if file_id in self.redirect_loop:
            raise web.HTTPFound(request.path)
        if file_id in self.file_status:
            return web.Response(status=self.file_status[file_id], text="gone")
        stored = self.files.get(file_id)
        if not authorized or stored is None or not self.files_read_scope:
            return web.Response(body=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=stored.data, content_type=stored.info["mimetype"])

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}})
        try:
            async for frame in socket:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(frame.data))
                    await self._notify()
        finally:
            self._sockets.remove(socket)
        return socket

    async def socket_send(self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0) -> str:
        """Slack pushes an envelope (events_api, slash_commands, interactive) to the connected app."""
        envelope_id = f"env-{next(self._ids)}"
        await self._sockets[-1].send_json({
            "envelope_id": envelope_id, "type": kind, "payload": payload, "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "", "accepts_response_payload": kind != "events_api",
        })
        return envelope_id

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append(body)
        self.responses_by_url.setdefault(str(request.url.with_scheme("http").with_query(None)), []).append(body)
        await self._notify()
        return web.Response(text="ok")

    # -- helpers --------------------------------------------------------------------------------------
    def _channel(self, channel: str) -> list[dict[str, Any]]:
        if not channel.startswith(("C", "G", "D")):
            raise _ApiError("channel_not_found")
        if channel in self.outside:
            raise _ApiError("not_in_channel")
        return self.history.setdefault(channel, [])

    def _next_ts(self) -> str:
        self._clock += 1
        return f"{self._clock:.0f}.{next(self._ids):06d}"

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()


class _ApiError(Exception):
    pass


class _Dropped(Exception):
    """The connection closes before an answer."""


def text_of(message: Mapping[str, Any]) -> str:
    """What a person reads of a bot message (or of the chat.postMessage/chat.update parameters that made it)."""
    sections = [b["text"]["text"] for b in message.get("blocks") or () if b["type"] == "section"]
    return unescape("".join(sections) if sections else message.get("text", ""))


def _check_blocks(params: dict[str, Any]) -> None:
    texts = [b["text"]["text"] for b in params.get("blocks") or () if b.get("type") == "section"]
    if any(len(t) > SECTION_LIMIT for t in texts) or any(not t for t in texts):
        raise _ApiError("invalid_blocks")
    if sum(len(t) for t in texts) > BLOCKS_LIMIT:
        raise _ApiError("msg_blocks_too_long")
    if not params.get("text") and not texts:
        raise _ApiError("no_text")


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params.update(await request.json())
    elif request.can_read_body:
        params.update(await request.post())
    for name in JSON_FIELDS:
        if isinstance(params.get(name), str):
            params[name] = json.loads(params[name])
    return params


@dataclass
class RecordingHost:
    """Any other web server: records each request's headers, so a test can see whether a token leaked."""

    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        async def anything(request: web.Request) -> web.Response:
            self.requests.append(dict(request.headers))
            return web.Response(body=b"OggS" + bytes(100), content_type="audio/ogg")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


# -- the Slack side of HTTP mode ----------------------------------------------------------------------

def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to every request it sends an app (v0 signing with the app's signing secret)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], *, team_id: str = "T0001", event_id: str | None = None) -> str:
    return json.dumps({
        "token": "legacy-verification-token", "team_id": team_id, "api_app_id": "A0001",
        "type": "event_callback", "event": event, "event_id": event_id or f"Ev{time.time_ns()}",
        "event_time": int(time.time()), "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    })


def message_event(channel: str, message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "type": "message", "channel": channel, "channel_type": "channel",
            "event_ts": message["ts"]}


def command_body(text: str, *, channel: str, response_url: str, user: str = "UALICE",
                 team_id: str = "T0001") -> str:
    return urlencode(command_payload(text, channel=channel, response_url=response_url, user=user, team_id=team_id))


def command_payload(text: str, *, channel: str, response_url: str, user: str = "UALICE",
                    team_id: str = "T0001") -> dict[str, str]:
    return {
        "token": "legacy-verification-token", "team_id": team_id, "team_domain": "fake-team",
        "channel_id": channel, "channel_name": "general", "user_id": user, "user_name": "alice",
        "command": "/transcribe", "text": text, "api_app_id": "A0001", "response_url": response_url,
        "trigger_id": "1.2.3",
    }


def shortcut_body(message: dict[str, Any], *, channel: str, response_url: str, user: str = "UALICE",
                  team_id: str = "T0001", callback_id: str = "transcribe") -> str:
    payload = {
        "type": "message_action", "token": "legacy-verification-token", "action_ts": f"{time.time():.6f}",
        "team": {"id": team_id, "domain": "fake-team"}, "user": {"id": user, "name": "alice"},
        "channel": {"id": channel, "name": "general"}, "callback_id": callback_id, "trigger_id": "1.2.3",
        "message_ts": message["ts"], "message": message, "response_url": response_url,
    }
    return urlencode({"payload": json.dumps(payload)})
