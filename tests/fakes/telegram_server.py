"""A fake Telegram Bot API on 127.0.0.1 (aiohttp): `/bot<token>/<method>`, JSON or form bodies.

What it does like Telegram: `getUpdates` with real offset semantics and long polling;
`sendMessage` returns a real Message and rejects malformed HTML with
"Bad Request: can't parse entities"; `editMessageText` ("message is not modified"),
`deleteMessage`, `sendChatAction`, `answerCallbackQuery`, `setMyCommands`,
`sendDocument` (multipart), `setWebhook` (then it POSTs updates to the bot with the
secret header) and `deleteWebhook`; 401 for a wrong token; 403 for a chat that
blocked the bot. Injected faults, for the next N calls of a method: a Bot API error
(`fail_next`: 429 with `retry_after`, 500 with its JSON body, ...), a reverse proxy's
HTML error page (`gateway_next`: 502, 504, with the call carried out behind it or not)
and a lost answer (`lose_next`: the connection closed after the request was read).

Tests drive it in-process (`user_says`, `press`, `redeliver`, `calls`); benchmarks run
it alone (`python -m tests.fakes.telegram_server --port 8200`) and drive it over HTTP
(`/_fake/...`, see `control_routes`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.fakes.telegram_html import EntityError, parse_html, utf16_len

TOKEN = "123456:TEST-token"
BOT_ID = 4242
BOT_USERNAME = "deck_bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
JSON_FIELDS = ("reply_markup", "allowed_updates", "commands", "reply_parameters")


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
LOST = 0  # the status recorded for a call whose answer never left


@dataclass(frozen=True)
class GatewayPage:
    """A reverse proxy's own error page in front of the Bot API (HTML, as nginx's).

    `done`: the Bot API behind it carried the call out before the proxy gave up on it.
    """

    status: int
    done: bool = False

    def response(self) -> web.Response:
        title = f"{self.status} {REASONS.get(self.status, 'Error')}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return web.Response(status=self.status, text=page, content_type="text/html")


@dataclass(frozen=True)
class Lost:
    """The request is read, then the connection closes with no answer.

    `done`: the call was carried out first (the answer, not the request, was lost).
    """

    done: bool = True


Fault = ApiError | GatewayPage | Lost


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.perf_counter)
    status: int = 200  # what the bot was answered (a proxy's page: its status; LOST: none)


@dataclass
class Queued:
    update: dict[str, Any]
    enqueued_at: float = field(default_factory=time.perf_counter)
    forced: bool = False  # a redelivery: returned once whatever the offset
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


class FakeTelegram:
    def __init__(
        self,
        *,
        token: str = TOKEN,
        connection_per_update: bool = False,
        webhook_connections: int = 1,
    ) -> None:
        self.token = token
        # Webhook POSTs on a fresh connection each, so a balancer in front of several
        # processes spreads them (its choice is per connection).
        self._connection_per_update = connection_per_update
        # Updates POSTed at once (Telegram's `max_connections`, 40 by default); one chat's
        # updates still one after the other, in order, as Telegram sends them.
        self._webhook_connections = webhook_connections
        self._in_flight: set[int] = set()  # chats with an update being POSTed
        self.port = 0
        self.calls: list[Call] = []
        self.chats: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        # ForceReply markups the bot sent, by (chat, message id): what the app would show
        self.force_replies: dict[tuple[int, int], dict[str, Any]] = {}
        self.documents: dict[tuple[int, int], bytes] = {}
        self.files: dict[str, bytes] = {}  # what users sent, by file_id (getFile, download)
        self.commands: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self.webhook: tuple[str, str] | None = None
        self.webhook_statuses: list[int] = []
        self._faults: dict[str, list[Fault | None]] = {}  # None: a call that goes through
        self._held: dict[str, asyncio.Event] = {}
        self.waiting: list[str] = []  # calls held by `hold`, by method
        self._queue: list[Queued] = []
        self.history: list[Queued] = []  # every update ever queued
        self.first_poll_at: float | None = None
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._press_ids = itertools.count(1)
        self._answerable: set[str] = set()
        self._changed = asyncio.Condition()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._pushers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    # -- life --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=50 << 20)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        control_routes(app, self)
        return app

    async def start(self, port: int = 0) -> Self:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._closing = True
        await self._notify()  # long polls return now
        await self._stop_pusher()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what users do -------------------------------------------------------------

    def chat(self, chat_id: int, kind: str | None = None) -> dict[str, Any]:
        known = self.chats.get(chat_id)
        if known is None or (kind and known["type"] != kind):
            kind = kind or ("private" if chat_id > 0 else "supergroup")
            known = {"id": chat_id, "type": kind}
            known.update({"first_name": f"U{chat_id}"} if kind == "private" else {"title": "G"})
            self.chats[chat_id] = known
        return known

    def user_says(
        self,
        text: str,
        *,
        user: int = 1001,
        chat: int | None = None,
        kind: str | None = None,
        reply_to: int | None = None,
        thread: int | None = None,
    ) -> int:
        """Queue a text message from `user` (in their private chat unless `chat`); its update id."""
        return self.user_sends(
            {"text": text}, user=user, chat=chat, kind=kind, reply_to=reply_to, thread=thread
        )

    def user_sends(
        self,
        content: dict[str, Any],
        *,
        user: int = 1001,
        chat: int | None = None,
        kind: str | None = None,
        reply_to: int | None = None,
        thread: int | None = None,
    ) -> int:
        """Queue a message with these contents (`{"sticker": {...}}`, `{"text": ...}`)."""
        chat_id = user if chat is None else chat
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id, kind),
            "from": {"id": user, "is_bot": False, "first_name": f"User{user}"},
            **content,
        }
        text = str(content.get("text", ""))
        if text.startswith("/"):
            size = len(text.split(None, 1)[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": size}]
        if reply_to is not None:
            message["reply_to_message"] = self.messages[(chat_id, reply_to)]
        if thread is not None:
            message.update(message_thread_id=thread, is_topic_message=True)
        return self._enqueue({"message": message})

    def add_file(self, content: bytes) -> dict[str, Any]:
        """Keep a file as Telegram keeps what users send; its `file_id`, `file_unique_id`
        and `file_size` (for a voice/audio/document object)."""
        number = len(self.files) + 1
        file_id = f"file{number}"
        self.files[file_id] = content
        return {"file_id": file_id, "file_unique_id": f"uf{number}", "file_size": len(content)}

    def user_voice(self, content: bytes, *, user: int = 1001, **where: Any) -> int:
        """Queue a voice note whose recording is `content` (the fake OpenAI hears its text)."""
        voice = {**self.add_file(content), "duration": 2, "mime_type": "audio/ogg"}
        return self.user_sends({"voice": voice}, user=user, **where)

    def press(self, data: str, *, message_id: int, chat: int, user: int = 1001) -> str:
        """Queue a button press on a message the bot sent; the callback query id."""
        query_id = f"cq{next(self._press_ids)}"
        self._answerable.add(query_id)
        query = {
            "id": query_id,
            "from": {"id": user, "is_bot": False, "first_name": f"User{user}"},
            "chat_instance": "ci",
            "data": data,
            "message": self.messages[(chat, message_id)],
        }
        self._enqueue({"callback_query": query})
        return query_id

    def raw_update(self, body: dict[str, Any]) -> int:
        """Queue an update exactly as given (with the next update id unless it names one):
        what the Bot API should never send, to see the bot survive it."""
        return self._enqueue(body)

    def redeliver(self, update_id: int) -> None:
        """Deliver an update again with the same id, as Telegram does after a lost confirm."""
        original = next(q for q in self.history if q.update_id == update_id)
        self._queue.append(Queued(original.update, forced=True))
        self._wake()

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        description: str = "",
        times: int = 1,
        after: int = 0,
    ) -> None:
        """The next `times` calls of `method` answer this Bot API error (a JSON body);
        with `after`, only once that many calls more went through."""
        if status == 429:
            text = description or f"Too Many Requests: retry after {retry_after}"
        else:
            text, retry_after = description or REASONS.get(status, "Bad Request"), None
        errors: list[Fault | None] = [ApiError(status, text, retry_after) for _ in range(times)]
        self._add(method, [None] * after + errors)

    def gateway_next(
        self, method: str, *, status: int = 502, done: bool = False, times: int = 1
    ) -> None:
        """The next `times` calls of `method` get a proxy's HTML error page instead."""
        self._add(method, [GatewayPage(status, done) for _ in range(times)])

    def lose_next(self, method: str, *, done: bool = True, times: int = 1) -> None:
        """The next `times` calls of `method` are read and their connection closed."""
        self._add(method, [Lost(done) for _ in range(times)])

    def _add(self, method: str, faults: list[Fault | None]) -> None:
        self._faults.setdefault(method, []).extend(faults)

    def hold(self, method: str) -> None:
        """Calls of `method` wait (their sender hangs) until `release`."""
        self._held[method] = asyncio.Event()

    def release(self, method: str) -> None:
        self._held.pop(method).set()

    def drop_queued(self) -> None:
        """Forget the updates not yet confirmed (a benchmark's next bot starts clean)."""
        self._queue.clear()

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and call.status == 200]

    def sent_texts(self, chat: int | None = None) -> list[str]:
        return [
            m["text"]
            for m in self.messages.values()
            if "text" in m and (chat is None or m["chat"]["id"] == chat)
        ]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait until `method` succeeded `count` times; fail after `timeout`."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)
        return self.calls_to(method)

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # -- the Bot API ---------------------------------------------------------------

    def _enqueue(self, body: dict[str, Any]) -> int:
        queued = Queued({"update_id": next(self._update_ids), **body})
        self._queue.append(queued)
        self.history.append(queued)
        self._wake()
        return queued.update_id

    def _wake(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        faults = self._faults.get(method)
        fault = faults.pop(0) if faults else None
        call = Call(method, params)
        response = web.Response(status=499)  # for a call that never reached the Bot API
        if not isinstance(fault, GatewayPage | Lost) or fault.done:
            response, result = await self._answer(request, call, fault)
            if method == "getUpdates" and call.status == 200 and not result and fault is None:
                return response  # empty polls are not worth recording
        if isinstance(fault, GatewayPage):
            call.status, response = fault.status, fault.response()
        elif isinstance(fault, Lost):
            if not fault.done:
                call.status = LOST
            assert request.transport is not None
            request.transport.close()  # the answer never arrives
        self.calls.append(call)
        await self._notify()
        return response

    async def _answer(
        self, request: web.Request, call: Call, fault: Fault | None
    ) -> tuple[web.Response, Any]:
        """Carry the call out (or refuse it with `fault`): the Bot API's answer."""
        result: Any = None
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if isinstance(fault, ApiError):
                raise fault
            held = self._held.get(call.method)
            if held is not None:
                self.waiting.append(call.method)
                await self._notify()
                await held.wait()
            handler = getattr(self, f"_api_{call.method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = await handler(call.params)
        except ApiError as exc:
            call.status = exc.status
            return exc.response(), result
        return web.json_response({"ok": True, "result": result}), result

    async def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Deck",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409, "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )  # fmt: skip
        if self.first_poll_at is None:
            self.first_poll_at = time.perf_counter()
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        self._confirm(offset)
        if not self._queue and timeout > 0:
            try:
                async with asyncio.timeout(timeout), self._changed:
                    await self._changed.wait_for(lambda: bool(self._queue) or self._closing)
            except TimeoutError:
                return []
        batch = self._queue[:limit]
        for queued in batch:
            queued.delivered = True
        return [queued.update for queued in batch]

    def _confirm(self, offset: int) -> None:
        """Updates below the offset are confirmed; a redelivery goes once it was delivered."""
        self._queue = [
            q
            for q in self._queue
            if not (q.forced and q.delivered) and (q.forced or q.update_id >= offset)
        ]

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        text = _visible_text(str(params.get("text", "")), params.get("parse_mode"))
        return self._store(chat_id, {"text": text}, params)

    async def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        document = params.get("document")
        if not isinstance(document, web.FileField):
            raise ApiError(400, "Bad Request: there is no document in the request")
        content = document.file.read()
        info = {
            "file_id": f"f{len(self.documents)}",
            "file_unique_id": f"u{len(self.documents)}",
            "file_name": document.filename,
        }
        extra: dict[str, Any] = {"document": {**info, "file_size": len(content)}}
        if params.get("caption"):
            extra["caption"] = str(params["caption"])
        message = self._store(chat_id, extra, params)
        self.documents[(chat_id, message["message_id"])] = content
        return message

    async def _api_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id", ""))
        content = self.files.get(file_id)
        if content is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(content) > 20 * 1024 * 1024:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(content),
            "file_path": f"voice/{file_id}.oga",
        }

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(Call("download", {"path": request.match_info["path"]}))
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1].split(".", 1)[0]
        content = self.files.get(file_id)
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        upload = params.get("photo")
        if not isinstance(upload, web.FileField):
            raise ApiError(400, "Bad Request: there is no photo in the request")
        content = upload.file.read()
        number = len(self.documents)
        extra: dict[str, Any] = {
            "photo": [{"file_id": f"p{number}", "file_unique_id": f"up{number}", "width": 1,
                       "height": 1, "file_size": len(content)}],
        }  # fmt: skip
        if params.get("caption"):
            extra["caption"] = str(params["caption"])
        message = self._store(chat_id, extra, params)
        self.documents[(chat_id, message["message_id"])] = content
        return message

    async def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        text = _visible_text(str(params.get("text", "")), params.get("parse_mode"))
        markup = params.get("reply_markup")
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise ApiError(
                400, "Bad Request: message is not modified: specified new message content "
                "and reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )  # fmt: skip
        message["text"] = text
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return message

    async def _api_deleteMessage(self, params: dict[str, Any]) -> bool:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if self.messages.pop(key, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._target(params)
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._answerable:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired")
        self._answerable.discard(query_id)
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands = list(params.get("commands") or [])
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = (str(params["url"]), str(params.get("secret_token", "")))
        await self._stop_pusher()
        self._pushers = [
            asyncio.create_task(self._push(), name=f"fake-telegram-webhook-{n}")
            for n in range(self._webhook_connections)
        ]
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        await self._stop_pusher()
        return True

    # -- helpers -------------------------------------------------------------------

    def _target(self, params: dict[str, Any]) -> int:
        chat_id = int(params.get("chat_id", 0))
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id == 0:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _store(self, chat_id: int, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Deck", "username": BOT_USERNAME},
            **body,
        }
        markup = _json_param(params.get("reply_markup"))
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = params["reply_markup"]
        elif markup:  # a ForceReply: Telegram does not return it with the message
            self.force_replies[(chat_id, message["message_id"])] = markup
        replied = _json_param(params.get("reply_parameters"))
        if replied and (chat_id, int(replied["message_id"])) in self.messages:
            message["reply_to_message"] = dict(self.messages[(chat_id, int(replied["message_id"]))])
        if params.get("message_thread_id"):
            message["message_thread_id"] = int(params["message_thread_id"])
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def _push(self) -> None:
        """Webhook mode: POST queued updates to the bot until it answers 200 (one pusher of
        `webhook_connections`; a chat whose update another pusher holds is left to it)."""
        assert self.webhook is not None
        url, secret = self.webhook
        if self._session is None:
            self._session = self._client()
        while True:
            async with self._changed:
                queued = await self._changed.wait_for(self._next_to_push)
                assert queued is not None  # wait_for returns only once it is truthy
                chat = _chat_of(queued.update)
                self._in_flight.add(chat)
            try:
                status = await self.post_update(queued.update, url=url, secret=secret)
            finally:
                self._in_flight.discard(chat)
            if status == 200:
                self._queue.remove(queued)
            else:
                await asyncio.sleep(0.05)
            await self._notify()  # the chat is free for the next pusher

    def _next_to_push(self) -> Queued | None:
        return next((q for q in self._queue if _chat_of(q.update) not in self._in_flight), None)

    async def post_update(self, update: dict[str, Any], *, url: str, secret: str) -> int:
        """POST one update to a webhook as Telegram would (the secret in its header)."""
        if self._session is None:
            self._session = self._client()
        timeout = aiohttp.ClientTimeout(total=5)
        headers = {SECRET_HEADER: secret} if secret else {}
        try:
            async with self._session.post(
                url, json=update, headers=headers, timeout=timeout
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 599
        self.webhook_statuses.append(status)
        await self._notify()
        return status

    def _client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(force_close=self._connection_per_update)
        return aiohttp.ClientSession(connector=connector)

    async def _stop_pusher(self) -> None:
        for pusher in self._pushers:
            pusher.cancel()
        await asyncio.gather(*self._pushers, return_exceptions=True)
        self._pushers = []
        self._in_flight.clear()


def _chat_of(update: dict[str, Any]) -> int:
    """The chat an update comes from (0 for one without a chat): Telegram's order is per chat."""
    for value in update.values():
        if isinstance(value, dict):
            message = value.get("message", value)
            chat = message.get("chat") if isinstance(message, dict) else None
            if isinstance(chat, dict):
                return int(chat["id"])
    return 0


def _visible_text(text: str, parse_mode: object) -> str:
    if parse_mode == "HTML":
        try:
            text = parse_html(text)
        except EntityError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if utf16_len(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    return text


async def _params(request: web.Request) -> dict[str, Any]:
    """Query, JSON or form fields; values that hold JSON (reply_markup...) decoded."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(dict(await request.post()))
    for name, value in params.items():
        if name in JSON_FIELDS and isinstance(value, str):
            params[name] = json.loads(value)
        elif value in ("true", "false"):
            params[name] = value == "true"
    return params


def control_routes(app: web.Application, fake: FakeTelegram) -> None:
    """HTTP control for benchmarks in another process: queue messages, wait, read timings."""

    async def enqueue(request: web.Request) -> web.Response:
        body = await request.json()
        ids = [fake.user_says(m["text"], user=m["user"], chat=m.get("chat")) for m in body]
        return web.json_response(ids)

    def matching(query: Any) -> list[Call]:
        """Successful calls to any of `methods` whose text holds `needle` (if given)."""
        methods = query.get("methods", "sendMessage").split(",")
        needle = query.get("needle", "")
        return [
            c
            for c in fake.calls
            if c.method in methods and c.status == 200 and needle in str(c.params.get("text", ""))
        ]

    async def wait(request: web.Request) -> web.Response:
        count = int(request.query["count"])
        timeout = float(request.query.get("timeout", "60"))
        try:
            await fake.wait_until(lambda: len(matching(request.query)) >= count, timeout)
        except TimeoutError:
            return web.json_response({"timeout": True, "count": len(matching(request.query))})
        return web.json_response({"timeout": False, "count": count})

    async def timings(request: web.Request) -> web.Response:
        """Enqueue times of the updates and arrival times of the calls (perf_counter)."""
        enqueued = {q.update_id: q.enqueued_at for q in fake.history}
        calls = [{"at": c.at, "chat": c.params.get("chat_id")} for c in matching(request.query)]
        body = {"enqueued": enqueued, "calls": calls, "first_poll": fake.first_poll_at}
        return web.json_response(body)

    async def reset(request: web.Request) -> web.Response:
        """A clean slate for the next bot: updates a stopped bot never confirmed go too."""
        fake.drop_queued()
        fake.calls.clear()
        fake.history.clear()
        fake.messages.clear()
        fake.first_poll_at = None
        return web.json_response(True)

    app.router.add_post("/_fake/enqueue", enqueue)
    app.router.add_get("/_fake/wait", wait)
    app.router.add_get("/_fake/timings", timings)
    app.router.add_post("/_fake/reset", reset)


def _json_param(value: Any) -> dict[str, Any] | None:
    """An object parameter: decoded already (a JSON body) or a JSON string (a form)."""
    if not value:
        return None
    decoded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return decoded


async def _serve(port: int, connection_per_update: bool, webhook_connections: int) -> None:
    server = await FakeTelegram(
        connection_per_update=connection_per_update, webhook_connections=webhook_connections
    ).start(port)
    print(f"fake Telegram on {server.base_url} token {server.token}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--connection-per-update", action="store_true", help="webhook mode")
    parser.add_argument("--webhook-connections", type=int, default=1, help="POSTs at once")
    options = parser.parse_args()
    asyncio.run(_serve(options.port, options.connection_per_update, options.webhook_connections))
