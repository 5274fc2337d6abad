"""A fake Discord on 127.0.0.1: REST (v10 shapes), a websocket gateway and a CDN for attachments.

The real discord.py client talks to it unchanged; tests post user messages and interactions through
the gateway and await the REST calls the bot makes. One guild, one text channel, one human user and a
moderator; ids are snowflake-like integers sent as strings, like Discord's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import WSMsgType, web

Payload = dict[str, Any]

GATEWAY_DISPATCH, GATEWAY_HEARTBEAT, GATEWAY_IDENTIFY, GATEWAY_RESUME = 0, 1, 2, 6
GATEWAY_HELLO, GATEWAY_HEARTBEAT_ACK = 10, 11
FLAG_EPHEMERAL = 1 << 6
FLAG_VOICE_MESSAGE = 1 << 13
MANAGE_GUILD = 1 << 5
MESSAGE_CONTENT = 1 << 15
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 31)  # view, send, attach, history


@dataclass(frozen=True, slots=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One REST request the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: tuple[Upload, ...] = ()
    at: float = field(default_factory=time.monotonic)
    """When it arrived (monotonic seconds): tests check the edit rate with it."""


@dataclass
class _Session:
    ws: web.WebSocketResponse
    session_id: str
    identified: asyncio.Event = field(default_factory=asyncio.Event)


class FakeDiscord:
    def __init__(self, *, token: str = "fake-bot-token", message_content_intent: bool = True) -> None:
        self.token = token
        self.message_content_intent = message_content_intent
        """Whether the application may ask for the privileged Message Content intent (Developer Portal switch)."""
        self._ids = itertools.count(1_100_000_000_000_000_000)
        self.application_id = self.new_id()
        self.bot_user = self._user("chatscribe", bot=True)
        self.user = self._user("alice")
        self.moderator = self._user("mod")
        self.other_bot = self._user("otherbot", bot=True)
        self.guild_id = self.new_id()
        self.channel_id = self.new_id()
        self.moderator_role_id = self.new_id()
        self.calls: list[Call] = []
        self.downloads: list[str] = []
        self.history: dict[str, list[Payload]] = {self.channel_id: []}
        self.commands: dict[str, list[Payload]] = {}
        self.locale = "en-US"
        """The Discord locale of whoever sends the next interaction (its `locale`)."""
        self.originals: dict[str, Payload] = {}
        """Interaction token -> its response message, once the bot edited `@original`."""
        self.identifies = 0
        self.resumes = 0
        self._files: dict[str, tuple[bytes, str]] = {}
        self._events: list[Payload] = []
        self._sequence = 0
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._changed = asyncio.Condition()
        self._rate_limits: dict[str, float] = {}
        self._expired: set[str] = set()
        self._forbidden: set[tuple[str, str]] = set()
        self._downloads_open = asyncio.Event()
        self._downloads_open.set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """`async with Fake() as fake:` serves it on 127.0.0.1 for the block."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{file_id}/{name}", self._cdn)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def connected(self, timeout: float = 20) -> None:
        """Until a client has identified (or resumed) on the gateway."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def drop_connection(self) -> None:
        """Close the gateway socket with a resumable code, as Discord does when it moves a session."""
        session = self._session
        assert session is not None, "no gateway connection to drop"
        self._connected.clear()
        self._session = None
        await session.ws.close(code=4000, message=b"fake reconnect")

    # -- what tests do as users ----------------------------------------------------------------------

    def new_id(self) -> str:
        return str(next(self._ids))

    def attachment(self, data: bytes, filename: str, content_type: str | None = None, *,
                   size: int | None = None, voice: bool = False) -> Payload:
        """An attachment payload whose URL this fake serves; `size` may claim more than `data` holds."""
        file_id = self.new_id()
        self._files[file_id] = (data, content_type or "application/octet-stream")
        url = f"http://127.0.0.1:{self.port}/cdn/{file_id}/{filename}"
        payload: Payload = {
            "id": file_id, "filename": filename, "size": len(data) if size is None else size,
            "url": url, "proxy_url": url,
        }
        if content_type:
            payload["content_type"] = content_type
        if voice:
            payload.update(duration_secs=11.0, waveform="AAAA")
        return payload

    async def user_message(self, content: str = "", *, attachments: list[Payload] | None = None,
                           author: Payload | None = None, voice: bool = False,
                           reply_to: Payload | None = None) -> Payload:
        """A message someone posts in the channel, dispatched as MESSAGE_CREATE."""
        message = self._message(author or self.user, content, attachments or [],
                                flags=FLAG_VOICE_MESSAGE if voice else 0, reply_to=reply_to)
        self.history[self.channel_id].append(message)
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    async def slash_command(self, name: str, options: list[Payload] | None = None, *,
                            attachments: list[Payload] | None = None, member: Payload | None = None) -> Payload:
        resolved = {"attachments": {a["id"]: a for a in attachments or []}}
        command = self._command(name)
        data = {"id": command["id"], "name": name, "type": 1, "options": options or [], "resolved": resolved}
        return await self._interaction(data, member)

    async def context_menu(self, name: str, message: Payload, *, member: Payload | None = None) -> Payload:
        command = self._command(name)
        data = {"id": command["id"], "name": name, "type": 3, "target_id": message["id"],
                "resolved": {"messages": {message["id"]: message}}}
        return await self._interaction(data, member)

    def member(self, user: Payload, *, moderator: bool = False) -> Payload:
        roles = [self.moderator_role_id] if moderator else []
        permissions = EVERYONE_PERMISSIONS | (MANAGE_GUILD if moderator else 0)
        return {"user": user, "roles": roles, "joined_at": _now(), "deaf": False, "mute": False, "flags": 0,
                "permissions": str(permissions)}

    def hold_downloads(self) -> None:
        """Attachment downloads wait (their GET is recorded) until release_downloads()."""
        self._downloads_open.clear()

    def release_downloads(self) -> None:
        self._downloads_open.set()

    def expire(self, attachment: Payload) -> None:
        """Make the attachment's signed URL stop working and give its message a fresh one, as Discord's CDN does."""
        old_id = attachment["url"].split("/")[-2]
        self._expired.add(old_id)
        fresh = self.attachment(self._files[old_id][0], attachment["filename"], self._files[old_id][1])
        attachment.update(url=fresh["url"], proxy_url=fresh["url"])

    def forbid(self, method: str, path_suffix: str) -> None:
        """Answer such requests with 403, as Discord does when the bot lacks a permission in the channel."""
        self._forbidden.add((method, path_suffix))

    def rate_limit_next(self, path_suffix: str, retry_after: float) -> None:
        """Answer the next request whose path ends with `path_suffix` with a 429."""
        self._rate_limits[path_suffix] = retry_after

    async def dispatch(self, event: str, data: Payload) -> None:
        self._sequence += 1
        frame = {"op": GATEWAY_DISPATCH, "t": event, "s": self._sequence, "d": data}
        self._events.append(frame)
        session = self._session
        if session is not None and session.identified.is_set() and not session.ws.closed:
            await session.ws.send_json(frame)

    # -- what tests observe --------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float = 60) -> list[Call]:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.calls))
        return self.calls

    async def wait_calls(self, method: str, suffix: str, count: int = 1, timeout: float = 60) -> list[Call]:
        def enough(calls: list[Call]) -> bool:
            return len(self.find(method, suffix)) >= count

        await self.wait_for(enough, timeout)
        return self.find(method, suffix)

    def find(self, method: str, suffix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    def bot_messages(self) -> list[Payload]:
        return [m for m in self.history[self.channel_id] if m["author"]["id"] == self.bot_user["id"]]

    # -- gateway -------------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws, session_id=self.new_id())
        self._session = session
        await ws.send_json({"op": GATEWAY_HELLO, "d": {"heartbeat_interval": 41_250}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == GATEWAY_HEARTBEAT:
                await ws.send_json({"op": GATEWAY_HEARTBEAT_ACK})
            elif op == GATEWAY_IDENTIFY:
                if data.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if data.get("intents", 0) & MESSAGE_CONTENT and not self.message_content_intent:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                self.identifies += 1
                await self._identify(session)
            elif op == GATEWAY_RESUME:
                self.resumes += 1
                await self._resume(session, int(data.get("seq") or 0))
        return ws

    async def _identify(self, session: _Session) -> None:
        ready = {
            "v": 10, "user": self.bot_user, "session_id": session.session_id, "resume_gateway_url": self.gateway_url,
            "guilds": [{"id": self.guild_id, "unavailable": True}], "private_channels": [], "relationships": [],
            "application": {"id": self.application_id, "flags": 0},
        }
        session.identified.set()
        await self.dispatch("READY", ready)
        await self.dispatch("GUILD_CREATE", self._guild())
        self._connected.set()

    async def _resume(self, session: _Session, seq: int) -> None:
        for frame in self._events:
            if frame["s"] > seq and frame["t"] not in ("READY", "GUILD_CREATE"):
                await session.ws.send_json(frame)
        session.identified.set()
        await self.dispatch("RESUMED", {})
        self._connected.set()

    # -- REST ----------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await _read_body(request)
        call = Call(request.method, path, dict(request.query), body, files)
        if request.headers.get("Authorization") != f"Bot {self.token}" and not path.startswith(
                ("/webhooks/", "/interactions/")):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        if any(request.method == m and path.endswith(suffix) for m, suffix in self._forbidden):
            await self._record(call)
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        limited = next((s for s in self._rate_limits if path.endswith(s)), None)
        if limited is not None:
            retry_after = self._rate_limits.pop(limited)
            await self._record(call)
            return _json(
                {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                status=429, headers={"Via": "1.1 google", "X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset-After": str(retry_after), "X-RateLimit-Limit": "5",
                                     "X-RateLimit-Bucket": "fake", "Retry-After": str(retry_after)})
        try:
            response = self._route(request.method, path, call)
        except KeyError:
            response = _json({"message": f"404: Not Found ({request.method} {path})", "code": 0}, status=404)
        await self._record(call)
        return response

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _route(self, method: str, path: str, call: Call) -> web.Response:  # noqa: C901 - a routing table
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/gateway/bot"):
            return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})
        if (method, path) == ("GET", "/users/@me"):
            return _json(self.bot_user)
        if method == "GET" and path in ("/applications/@me", "/oauth2/applications/@me"):
            return _json(self._application())
        if parts[0] == "applications" and parts[-1] == "commands" and method == "PUT":
            return _json(self._sync_commands(path, call.body))
        if parts[0] == "channels":
            return self._channel_route(method, parts[1], parts[2:], call)
        if parts[0] == "interactions" and method == "POST":
            return _json(self._callback(parts[1], call.body))
        if parts[0] == "webhooks":
            return self._webhook_route(method, parts[3:], call)
        raise KeyError(path)

    def _channel_route(self, method: str, channel_id: str, rest: list[str], call: Call) -> web.Response:
        history = self.history[channel_id]
        if rest == ["typing"] and method == "POST":
            return web.Response(status=204)
        if rest == ["messages"] and method == "POST":
            message = self._bot_message(call.body, call.files, reply_to=(call.body or {}).get("message_reference"))
            history.append(message)
            return _json(message)
        if rest == ["messages"] and method == "GET":
            limit = int(call.query.get("limit", 50))
            before = call.query.get("before")
            newest_first = [m for m in reversed(history) if before is None or int(m["id"]) < int(before)]
            return _json(newest_first[:limit])
        if len(rest) == 2 and rest[0] == "messages" and method == "GET":
            return _json(next(m for m in history if m["id"] == rest[1]))
        if len(rest) == 2 and rest[0] == "messages" and method == "PATCH":
            message = next(m for m in history if m["id"] == rest[1])
            message.update(content=(call.body or {}).get("content", message["content"]), edited_timestamp=_now())
            return _json(message)
        if len(rest) == 2 and rest[0] == "messages" and method == "DELETE":
            history[:] = [m for m in history if m["id"] != rest[1]]
            return web.Response(status=204)
        raise KeyError(rest)

    def _webhook_route(self, method: str, rest: list[str], call: Call) -> web.Response:
        history = self.history[self.channel_id]
        if not rest and method == "POST":
            message = self._bot_message(call.body, call.files, webhook=True)
            history.append(message)
            return _json(message)
        if rest == ["messages", "@original"] and method == "PATCH":
            # The deferred response ("thinking…") edited: one message in the channel, kept per token.
            token = call.path.split("/")[3]
            message = self.originals.get(token)
            if message is None:
                message = self.originals[token] = self._bot_message(call.body, call.files, webhook=True)
                history.append(message)
            else:
                message.update(content=(call.body or {}).get("content", message["content"]), edited_timestamp=_now())
            return _json(message)
        if rest[:1] == ["messages"] and method == "PATCH":
            message = self._bot_message(call.body, call.files, webhook=True)
            return _json(message)
        raise KeyError(rest)

    def _callback(self, interaction_id: str, body: Payload) -> Payload:
        kind = body["type"]
        ephemeral = bool((body.get("data") or {}).get("flags", 0) & FLAG_EPHEMERAL)
        response: Payload = {"interaction": {
            "id": interaction_id, "type": 2, "response_message_loading": kind == 5,
            "response_message_ephemeral": ephemeral}, "resource": {"type": kind}}
        if kind == 4:
            message = self._bot_message(body.get("data") or {}, (), webhook=True)
            self.history[self.channel_id].append(message)
            response["resource"]["message"] = message
            response["interaction"]["response_message_id"] = message["id"]
        return response

    def _sync_commands(self, path: str, commands: list[Payload]) -> list[Payload]:
        guild_id = path.split("/guilds/")[1].split("/")[0] if "/guilds/" in path else None
        synced = [self._registered(command, guild_id) for command in commands]
        self.commands[guild_id or "global"] = synced
        return synced

    def _registered(self, command: Payload, guild_id: str | None) -> Payload:
        registered = {**command, "id": self.new_id(), "application_id": self.application_id, "version": "1",
                      "description": command.get("description", ""), "type": command.get("type", 1)}
        if guild_id:
            registered["guild_id"] = guild_id
        registered["options"] = [_with_descriptions(o) for o in command.get("options", [])]
        return registered

    async def _cdn(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.downloads.append(file_id)
        await self._record(Call("GET", request.path, dict(request.query), None))
        await self._downloads_open.wait()
        if file_id in self._expired:
            return web.Response(status=404, text="This content is no longer available.")
        data, content_type = self._files[file_id]
        return web.Response(body=data, content_type=content_type)

    # -- payloads -----------------------------------------------------------------------------------

    def _user(self, name: str, *, bot: bool = False) -> Payload:
        return {"id": self.new_id(), "username": name, "discriminator": "0", "global_name": name, "avatar": None,
                "bot": bot, "public_flags": 0}

    def _application(self) -> Payload:
        return {"id": self.application_id, "name": "chatscribe", "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "owner": self.moderator,
                "verify_key": "00", "flags": 0, "interactions_endpoint_url": None}

    def _guild(self) -> Payload:
        everyone = {"id": self.guild_id, "name": "@everyone", "permissions": str(EVERYONE_PERMISSIONS),
                    "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        moderator = {**everyone, "id": self.moderator_role_id, "name": "mods", "position": 1,
                     "permissions": str(EVERYONE_PERMISSIONS | MANAGE_GUILD)}
        channel = {"id": self.channel_id, "type": 0, "guild_id": self.guild_id, "name": "general",
                   "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}
        return {
            "id": self.guild_id, "name": "Test server", "owner_id": self.moderator["id"], "unavailable": False,
            "member_count": 4, "large": False, "roles": [everyone, moderator], "channels": [channel],
            "threads": [], "members": [self.member(self.bot_user)], "emojis": [], "stickers": [],
            "features": [], "voice_states": [], "presences": [], "joined_at": _now(),
        }

    def _message(self, author: Payload, content: str, attachments: list[Payload], *, flags: int = 0,
                 reply_to: Payload | None = None, webhook: bool = False) -> Payload:
        message: Payload = {
            "id": self.new_id(), "channel_id": self.channel_id, "guild_id": self.guild_id, "author": author,
            "content": content, "timestamp": _now(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": attachments,
            "embeds": [], "pinned": False, "type": 19 if reply_to else 0, "flags": flags,
        }
        if not webhook:
            message["member"] = {k: v for k, v in self.member(author).items() if k != "user"}
        else:
            message["webhook_id"] = self.application_id
        if reply_to is not None:
            if "author" not in reply_to:  # a message_reference sent by the bot: the message it names
                reply_to = self._find(str(reply_to["message_id"]))
            message["message_reference"] = {"message_id": reply_to["id"], "channel_id": self.channel_id,
                                            "guild_id": self.guild_id}
            message["referenced_message"] = reply_to
        return message

    def _bot_message(self, body: Payload | None, files: tuple[Upload, ...], *, reply_to: Payload | None = None,
                     webhook: bool = False) -> Payload:
        body = body or {}
        attachments = [self.attachment(f.data, f.name) for f in files]
        message = self._message(self.bot_user, body.get("content") or "", attachments,
                                flags=body.get("flags") or 0, reply_to=reply_to, webhook=webhook)
        allowed = body.get("allowed_mentions")
        message["allowed_mentions"] = allowed  # kept for tests to read back
        # Discord's rules: without allowed_mentions everything in the text pings, and so does a reply.
        parse = allowed.get("parse", []) if allowed is not None else ["everyone", "users", "roles"]
        message["mention_everyone"] = "everyone" in parse and ("@everyone" in message["content"]
                                                               or "@here" in message["content"])
        replied = message.get("referenced_message")
        pings_author = allowed is None or allowed.get("replied_user", False)
        message["mentions"] = [replied["author"]] if replied and pings_author else []
        return message

    def _find(self, message_id: str) -> Payload:
        for message in self.history[self.channel_id]:
            if message["id"] == message_id:
                return message
        raise KeyError(message_id)

    def _command(self, name: str) -> Payload:
        for commands in self.commands.values():
            for command in commands:
                if command["name"] == name:
                    return command
        raise AssertionError(f"command {name!r} was never synced; synced: {self.commands}")

    async def _interaction(self, data: Payload, member: Payload | None) -> Payload:
        interaction = {
            "id": self.new_id(), "application_id": self.application_id, "type": 2, "data": data,
            "guild_id": self.guild_id, "channel_id": self.channel_id,
            "channel": {"id": self.channel_id, "type": 0, "guild_id": self.guild_id, "name": "general",
                        "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None},
            "member": member or self.member(self.user), "token": f"itoken-{self.new_id()}", "version": 1,
            "app_permissions": str(EVERYONE_PERMISSIONS), "locale": self.locale, "guild_locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {"0": self.guild_id}, "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        await self.dispatch("INTERACTION_CREATE", interaction)
        return interaction


def _with_descriptions(option: Payload) -> Payload:
    return {**option, "description": option.get("description", ""),
            "options": [_with_descriptions(o) for o in option.get("options", [])]}


async def _read_body(request: web.Request) -> tuple[Any, tuple[Upload, ...]]:
    if request.content_type.startswith("multipart/"):
        body: Any = None
        files: list[Upload] = []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                files.append(Upload(part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
        return body, tuple(files)
    raw = await request.read()
    return (json.loads(raw) if raw else None), ()


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses a body as JSON only when the content type is exactly application/json
    return web.Response(body=json.dumps(data).encode(), status=status, headers={**(headers or {}),
                                                                        "Content-Type": "application/json"})


def _now() -> str:
    return datetime.now(UTC).isoformat()


__all__ = ["Call", "FakeDiscord", "Upload", "FLAG_EPHEMERAL", "FLAG_VOICE_MESSAGE"]

