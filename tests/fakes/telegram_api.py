"""A fake Telegram Bot API on 127.0.0.1, speaking real HTTP to the real python-telegram-bot.

It keeps just enough state to behave like Telegram where the bot's behaviour depends on it: long
polling with offsets (an update is acknowledged only by a later getUpdates with a higher offset), files
behind getFile and /file/bot<token>/<path>, messages that can be deleted (replying to one fails unless
allow_sending_without_reply), "message is not modified" on identical edits, admins per chat, and
injected failures such as a 429 with retry_after. Every call is recorded for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

# Fields whose values PTB sends as plain strings: never JSON-decode them ("123" stays text).
_STRING_FIELDS = {"text", "caption", "file_id", "url", "secret_token", "action", "description",
                  "parse_mode", "language_code", "filename"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class _File:
    file_id: str
    file_unique_id: str
    data: bytes
    path: str
    size: int


@dataclass
class _Failure:
    method: str
    status: int
    description: str
    retry_after: int | None


class FakeTelegram:
    """Start with `await fake.start()`; point PTB at `fake.base_url` / `fake.base_file_url`."""

    def __init__(self, token: str = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmno") -> None:
        self.token = token
        self.bot_user = {"id": 999, "is_bot": True, "first_name": "Scribe", "username": "scribe_test_bot"}
        self.calls: list[Call] = []
        self.downloads: Counter[str] = Counter()
        """file_unique_id -> number of downloads."""
        self.acknowledged_below = 0
        """Every update with an id below this was acknowledged by the bot (offset semantics)."""
        self.webhook: dict[str, Any] | None = None
        self.admins: dict[int, set[int]] = {}
        self.local_mode = False
        """Behave like a local Bot API server: getFile serves files over 20 MB."""
        self.drafts = False
        """Offer sendMessageDraft (Bot API 9.3+); off: answer it 404 as an older Bot API server does."""
        self.lose_acknowledgements = False
        """Answer getUpdates by its offset but forget the acknowledgement, as when the bot process died
        before its next getUpdates reached Telegram: a new process is sent those updates again."""
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._files: dict[str, _File] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._deleted: set[tuple[int, int]] = set()
        self._failures: list[_Failure] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """`async with Fake() as fake:` serves it on 127.0.0.1 for the block."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001

    async def close(self) -> None:
        self._closing = True
        await self._notify()  # end pending long polls now rather than at their timeout
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- what tests push in ------------------------------------------------------------------------

    def add_file(self, data: bytes, *, unique_id: str | None = None, size: int | None = None,
                 folder: str = "voice", extension: str = "oga") -> dict[str, Any]:
        """Store a file as Telegram would; returns the file fields a message carries."""
        number = next(self._file_ids)
        unique = unique_id or f"uniq{number}"
        file_id = f"file{number}-{unique}"  # a new file_id each time, as Telegram does for forwards
        stored = _File(file_id, unique, data, f"{folder}/file_{number}.{extension}",
                       size if size is not None else len(data))
        self._files[file_id] = stored
        return {"file_id": file_id, "file_unique_id": unique, "file_size": stored.size}

    def message(self, *, chat_id: int, user_id: int = 42, chat_type: str = "private", text: str | None = None,
                reply_to: dict[str, Any] | None = None, language_code: str | None = None,
                **content: Any) -> dict[str, Any]:
        """A message from a user (content e.g. voice={...}); stored so replies to it resolve.
        `language_code`: the language of the sender's Telegram app (IETF tag, e.g. "de")."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat.update(first_name="Ada", username=f"user{user_id}")
        else:
            chat["title"] = "Team"
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": "Ada", "username": f"user{user_id}",
                     **({"language_code": language_code} if language_code else {})},
            **content,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def voice(self, data: bytes, *, chat_id: int, unique_id: str | None = None, size: int | None = None,
              duration: int = 11, **kwargs: Any) -> dict[str, Any]:
        file = self.add_file(data, unique_id=unique_id, size=size)
        return self.message(chat_id=chat_id, voice={**file, "duration": duration, "mime_type": "audio/ogg"},
                            **kwargs)

    def video_note(self, data: bytes, *, chat_id: int, duration: int = 11, **kwargs: Any) -> dict[str, Any]:
        file = self.add_file(data, folder="video_notes", extension="mp4")
        return self.message(chat_id=chat_id, video_note={**file, "duration": duration, "length": 240}, **kwargs)

    def document(self, data: bytes, *, chat_id: int, file_name: str, mime_type: str, size: int | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        file = self.add_file(data, size=size, folder="documents", extension=file_name.rsplit(".", 1)[-1])
        return self.message(chat_id=chat_id, document={**file, "file_name": file_name, "mime_type": mime_type},
                            **kwargs)

    async def push(self, message: dict[str, Any]) -> int:
        """Queue an update carrying the message for the bot's next getUpdates; returns its update_id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, "message": message})
        await self._notify()
        return update_id

    def update(self, message: dict[str, Any]) -> dict[str, Any]:
        """An update for webhook delivery (not queued for polling)."""
        return {"update_id": next(self._update_ids), "message": message}

    def delete(self, message: dict[str, Any]) -> None:
        self._deleted.add((message["chat"]["id"], message["message_id"]))

    def fail_next(self, method: str, status: int = 429, *, retry_after: int | None = 1,
                  description: str = "Too Many Requests: retry after 1", times: int = 1) -> None:
        self._failures.extend(_Failure(method, status, description, retry_after) for _ in range(times))

    def clear_failures(self) -> None:
        self._failures.clear()

    # -- what tests read back ----------------------------------------------------------------------

    def calls_to(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods]

    def replies(self, chat_id: int) -> list[Call]:
        """Messages and documents the bot sent to a chat, in order."""
        return [c for c in self.calls_to("sendMessage", "sendDocument") if c.params.get("chat_id") == chat_id]

    def final_texts(self, chat_id: int) -> list[str]:
        """What a person now sees from the bot in the chat: sent texts after their latest edits."""
        texts = []
        for (chat, _), message in self._messages.items():
            if chat == chat_id and message.get("from", {}).get("id") == self.bot_user["id"]:
                texts.append(message.get("text") or message.get("caption") or "")
        return texts

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for (chat, _), m in self._messages.items()
                if chat == chat_id and m.get("from", {}).get("id") == self.bot_user["id"]]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 60.0) -> None:
        """Until predicate() is true; re-checked after every call the bot makes."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: bool(predicate()))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- HTTP --------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(Call(method, params))
        await self._notify()  # a long poll must be visible as soon as it starts, not when it ends
        try:
            failure = next((f for f in self._failures if f.method == method), None)
            if failure:
                self._failures.remove(failure)
                extra = {"parameters": {"retry_after": failure.retry_after}} if failure.retry_after else {}
                return _error(failure.status, failure.description, **extra)
            handler = getattr(self, f"_m_{method.lower()}", None)
            if handler is None:
                return _error(404, "Not Found")
            if method.lower() == "getupdates":
                return await handler(params)
            return handler(params)
        finally:
            await self._notify()

    async def _m_getupdates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        if offset > self.acknowledged_below and not self.lose_acknowledgements:
            self.acknowledged_below = offset
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            await self._notify()
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)

        def pending() -> list[dict[str, Any]]:
            return [u for u in self._updates if u["update_id"] >= offset][:limit]

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(pending()) or self._closing)
        except TimeoutError:
            pass
        return _ok(pending())

    def _m_getme(self, params: dict[str, Any]) -> web.Response:
        return _ok(self.bot_user)

    def _m_deletewebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = None
        return _ok(True)

    def _m_setwebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = params
        return _ok(True)

    def _m_setmycommands(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    def _m_sendchataction(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    def _m_getfile(self, params: dict[str, Any]) -> web.Response:
        stored = self._files.get(params["file_id"])
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        if stored.size > 20_000_000 and not self.local_mode:
            return _error(400, "Bad Request: file is too big")
        return _ok({"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                    "file_size": stored.size, "file_path": stored.path})

    def _m_getchatmember(self, params: dict[str, Any]) -> web.Response:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        status = "administrator" if user_id in self.admins.get(chat_id, set()) else "member"
        user = {"id": user_id, "is_bot": False, "first_name": "Ada"}
        extra = {"can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
                 "can_delete_messages": True, "can_manage_video_chats": True, "can_restrict_members": True,
                 "can_promote_members": False, "can_change_info": True, "can_invite_users": True,
                 "can_post_stories": True, "can_edit_stories": True, "can_delete_stories": True}
        return _ok({"status": status, "user": user, **(extra if status == "administrator" else {})})

    def _m_getchatadministrators(self, params: dict[str, Any]) -> web.Response:
        chat_id = int(params["chat_id"])
        admins = []
        for user_id in sorted(self.admins.get(chat_id, set())):
            member = json.loads(self._m_getchatmember({"chat_id": chat_id, "user_id": user_id}).text or "{}")
            admins.append(member["result"])
        return _ok(admins)

    def _m_sendmessage(self, params: dict[str, Any]) -> web.Response:
        return self._store_sent(params, {"text": params["text"]})

    def _m_sendmessagedraft(self, params: dict[str, Any]) -> web.Response:
        if not self.drafts:
            return _error(404, "Not Found")
        if int(params["chat_id"]) <= 0:
            return _error(400, "Bad Request: drafts can be sent to private chats only")
        if not int(params.get("draft_id") or 0):
            return _error(400, "Bad Request: draft_id must be non-zero")
        return _ok(True)

    def _m_senddocument(self, params: dict[str, Any]) -> web.Response:
        document = params["document"]
        number = next(self._file_ids)
        content = {"document": {"file_id": f"sent{number}", "file_unique_id": f"sentu{number}",
                                "file_name": document["filename"], "file_size": len(document["data"])}}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._store_sent(params, content)

    def _m_editmessagetext(self, params: dict[str, Any]) -> web.Response:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self._messages.get(key)
        if message is None or key in self._deleted:
            return _error(400, "Bad Request: message to edit not found")
        if message.get("text") == params["text"]:
            return _error(400, "Bad Request: message is not modified: specified new message content and reply "
                               "markup are exactly the same as a current content and reply markup of the message")
        message["text"] = params["text"]
        message["edit_date"] = int(time.time())
        return _ok(message)

    def _store_sent(self, params: dict[str, Any], content: dict[str, Any]) -> web.Response:
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": self.bot_user, **content,
        }
        reply = params.get("reply_parameters") or {}
        if reply:
            target = (chat_id, int(reply["message_id"]))
            if target in self._deleted or target not in self._messages:
                if not reply.get("allow_sending_without_reply"):
                    return _error(400, "Bad Request: message to be replied not found")
            else:
                message["reply_to_message"] = self._messages[target]
        self._messages[(chat_id, message["message_id"])] = message
        return _ok(message)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        stored = next((f for f in self._files.values() if f.path == path), None)
        if stored is None:
            return web.Response(status=404)
        self.downloads[stored.file_unique_id] += 1
        self.calls.append(Call("download", {"path": path, "file_unique_id": stored.file_unique_id}))
        await self._notify()
        return web.Response(body=stored.data, content_type="application/octet-stream")


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST":
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                params[name] = {"filename": value.filename, "data": value.file.read()}
            elif name in _STRING_FIELDS:
                params[name] = value
            else:
                params[name] = _json_or_text(str(value))
    # multipart uploads name the file by "attach://<field>"; resolve it the way Telegram does
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            params[name] = params.pop(value.removeprefix("attach://"))
    return params


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, **extra: Any) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, "description": description, **extra},
                             status=status)
