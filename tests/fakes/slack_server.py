"""A fake Slack on 127.0.0.1: the Web API, file uploads, response URLs and Socket Mode.

It speaks the real wire protocol (bearer tokens, `ok`/`error` JSON, HTTP 429 with
`Retry-After`, the Socket Mode envelope and ack), records every call, and can fail
the next call of a method with a 429, a dropped connection, or a lost answer (done,
then the connection dropped). Messages keep their metadata and are listed by
`conversations.history` / `conversations.replies` as Slack lists them. `revoke()`
makes Slack refuse the bot token (`token_revoked`) until `restore()`. `views.open` takes a
trigger once (a used one is `expired_trigger_id`) and keeps the view in `views`. The other
direction (Slack calling the bot in HTTP mode) is `sign()`: a request signed like Slack's,
with bodies for events, commands, presses and a modal's submission or closing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
SIGNING_SECRET = "test-signing-secret"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T0TEAM"
WAIT_SECONDS = 10.0


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: int = 0
    history: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    at: float = field(default_factory=time.perf_counter)  # posted or last edited (benchmarks)

    @property
    def shown(self) -> str:
        """The text a person would read: the sections' mrkdwn joined, else `text`."""
        parts = [b["text"]["text"] for b in self.blocks if b.get("type") == "section"]
        return "\n".join(parts) if parts else self.text

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [e for b in self.blocks if b.get("type") == "actions" for e in b["elements"]]


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}
        self.uploads: dict[str, bytes] = {}
        # Files people shared (files.info, url_private): the file object and its bytes.
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.downloads: list[tuple[str, str]] = []  # (file id, the token it came with)
        self.responses: list[dict[str, Any]] = []  # posted to response URLs
        self.acks: list[dict[str, Any]] = []  # Socket Mode acks from the bot
        self._failures: dict[str, list[str]] = {}
        self.revoked = False
        # users.info: who differs from a full member of TEAM (fields to change, or an error)
        self.users: dict[str, dict[str, Any] | str] = {}
        self.views: list[dict[str, Any]] = []  # modals opened, as Slack holds them
        self._triggers_used: set[str] = set()
        self.triggers_expire = False  # every trigger has expired (the bot was too slow)
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- running ----------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # the SDK reads history with GET
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/respond/{token}", self._respond)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # -- what a test arranges -----------------------------------------------------------

    def fail_next(self, method: str, how: str = "429") -> None:
        """Make the next call of `method` answer 429 (Retry-After: 1), drop the connection
        before doing anything ("drop"), or do it and drop the connection ("lose")."""
        self._failures.setdefault(method, []).append(how)

    def share_file(
        self, content: bytes, *, name: str, mimetype: str, channel: str, url: str = ""
    ) -> dict[str, Any]:
        """A file a person shared in `channel`, as the event's `files` list carries it."""
        file_id = f"F{len(self.files) + 1:07d}"
        where = "ims" if channel.startswith("D") else "channels"
        info = {
            "id": file_id,
            "name": name,
            "mimetype": mimetype,
            "size": len(content),
            "url_private": url or f"{self.url}/files-pri/{file_id}/{name}",
            "url_private_download": url or f"{self.url}/files-pri/{file_id}/{name}",
            "channels": [],
            "ims": [],
            where: [channel],
        }
        self.files[file_id] = (info, content)
        return dict(info)

    def revoke(self) -> None:
        """The bot token stops working, as when an admin revokes it."""
        self.revoked = True

    def restore(self) -> None:
        self.revoked = False

    async def socket_send(self, envelope: dict[str, Any]) -> None:
        """Deliver a Socket Mode envelope over the newest WebSocket."""
        await self._sockets[-1].send_json(envelope)

    # -- what a test reads ----------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def in_thread(self, channel: str, thread_ts: str) -> list[Message]:
        return [
            m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts
        ]

    async def wait_for(self, check: Callable[[FakeSlack], Any]) -> Any:
        """Wait until `check(self)` returns something truthy; return it."""
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            while not (found := check(self)):
                await self._changed.wait()
            return found

    async def wait_for_text(self, needle: str) -> Message:
        def find(fake: FakeSlack) -> Message | None:
            return next((m for m in fake.messages.values() if needle in m.shown), None)

        message: Message = await self.wait_for(find)
        return message

    # -- the Web API ----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await _arguments(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        failure = self._failures.get(method, [None]).pop(0) if self._failures.get(method) else None
        await self._record(Call(method, args, token))
        if failure == "429":
            body = {"ok": False, "error": "ratelimited"}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        if failure == "drop":
            assert request.transport is not None
            request.transport.close()  # the client sees a dropped connection
            return web.Response()
        answer = await self._answer(method, args, token)
        if failure == "lose":  # done, but the answer never reaches the client
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(answer)

    async def _answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            return {"ok": False, "error": "invalid_auth"}
        if self.revoked and token == BOT_TOKEN:
            return {"ok": False, "error": "token_revoked"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        answer: dict[str, Any] = await handler(args)
        return answer

    async def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake",
            "user": "deck",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    async def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """A full member of TEAM, unless `users` says otherwise (a guest, another team)."""
        user = str(args.get("user", ""))
        found = self.users.get(user, {})
        if isinstance(found, str):
            return {"ok": False, "error": found}
        person = {
            "id": user,
            "team_id": TEAM,
            "name": user.lower(),
            "is_bot": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
        }
        return {"ok": True, "user": person | found}

    async def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.url.replace("http://", "ws://") + "/link"}

    async def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel", "")
        if channel.startswith("CNOTIN"):
            return {"ok": False, "error": "not_in_channel"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"  # now, as Slack's are
        message = Message(
            channel, ts, args.get("text", ""), _blocks(args), args.get("thread_ts") or None
        )
        message.metadata = _json_arg(args.get("metadata"))
        async with self._changed:
            self.messages[ts] = message
            self._changed.notify_all()
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text}}

    async def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first (thread replies are not listed)."""
        found = [
            m
            for m in self.messages.values()
            if m.channel == args.get("channel") and m.thread_ts in (None, m.ts)
        ]
        return self._listing(found, args)

    async def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: the parent and its replies."""
        parent = args.get("ts", "")
        found = [
            m
            for m in self.messages.values()
            if m.channel == args.get("channel") and parent in {m.ts, m.thread_ts}
        ]
        return self._listing(found, args)

    def _listing(self, found: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in {"1", "true"}
        listed = []
        for m in sorted(found, key=lambda m: float(m.ts), reverse=True):
            if float(m.ts) < oldest:
                continue
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            item.update(user=BOT_USER, bot_id=BOT_ID)
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            listed.append(item)
        return {"ok": True, "messages": listed[: int(args.get("limit") or 100)]}

    async def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        async with self._changed:
            message.history.append(message.shown)
            message.text, message.blocks = args.get("text", ""), _blocks(args)
            message.edits += 1
            message.at = time.perf_counter()
            self._changed.notify_all()
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    async def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """Open a modal: a trigger works once (Slack's also expire after 3 s)."""
        trigger = str(args.get("trigger_id") or "")
        view = _json_arg(args.get("view"))
        if not trigger or trigger in self._triggers_used or self.triggers_expire:
            return {"ok": False, "error": "expired_trigger_id"}
        if view is None or view.get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        self._triggers_used.add(trigger)
        opened = {**view, "id": f"V{next(self._ts):08d}", "team_id": TEAM, "state": {"values": {}}}
        async with self._changed:
            self.views.append(opened)
            self._changed.notify_all()
        return {"ok": True, "view": opened}

    async def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"1712345679.{next(self._ts):06d}"}

    async def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        async with self._changed:
            found = self.messages.pop(args.get("ts", ""), None)
            self._changed.notify_all()
        return {"ok": found is not None} if found else {"ok": False, "error": "message_not_found"}

    async def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self.files.get(str(args.get("file", "")))
        return {"ok": True, "file": found[0]} if found else {"ok": False, "error": "file_not_found"}

    async def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ts):08d}"
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    async def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args["files"]
        files = json.loads(files) if isinstance(files, str) else files
        missing = [f["id"] for f in files if f["id"] not in self.uploads]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    # -- uploads, response URLs, Socket Mode ------------------------------------------------

    async def _download(self, request: web.Request) -> web.Response:
        """`url_private`: the bytes with the bot token, Slack's sign-in page without it."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        file_id = request.match_info["file_id"]
        async with self._changed:
            self.downloads.append((file_id, token))
            self._changed.notify_all()
        found = self.files.get(file_id)
        if token != BOT_TOKEN or found is None:
            return web.Response(status=302, headers={"Location": "/signin"})
        return web.Response(body=found[1])

    async def _upload(self, request: web.Request) -> web.Response:
        async with self._changed:
            self.uploads[request.match_info["file_id"]] = await request.read()
            self._changed.notify_all()
        return web.Response(text="OK - 0")

    async def _respond(self, request: web.Request) -> web.Response:
        async with self._changed:
            self.responses.append(await request.json())
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "AFAKE"},
            }
        )
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                async with self._changed:
                    self.acks.append(json.loads(frame.data))
                    self._changed.notify_all()
        return ws

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Slack takes arguments as a query, a form or JSON; so does the fake."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args.update(await request.json())
    elif request.can_read_body:
        args.update(await request.post())
    return args


def _json_arg(value: Any) -> dict[str, Any] | None:
    """An object argument: JSON in a JSON body, a JSON string in a form."""
    if not value:
        return None
    result: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return result


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    result: list[dict[str, Any]] = json.loads(blocks) if isinstance(blocks, str) else blocks
    return result


# -- Slack calling the bot (HTTP mode) ----------------------------------------------------


def sign(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends: `X-Slack-Signature` over `v0:<timestamp>:<body>`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def event_body(event: dict[str, Any], *, event_id: str) -> str:
    """An Events API delivery; the installation's team (the sender's is in `event`)."""
    return json.dumps(
        {
            "token": "unused",
            "team_id": TEAM,
            "api_app_id": "AFAKE",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            "event": event,
        }
    )


def command_body(
    text: str, *, user: str, channel: str, trigger: str, response_url: str = "", team: str = TEAM
) -> str:
    return urlencode(
        {
            "token": "unused",
            "team_id": team,
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/deck",
            "text": text,
            "api_app_id": "AFAKE",
            "response_url": response_url,
            "trigger_id": trigger,
        }
    )


def action_body(
    message: Message, button: dict[str, Any], *, user: str, trigger: str, team: str = TEAM
) -> str:
    """A button press by `user` of `team` (another team's: a Slack Connect channel)."""
    payload = {
        "type": "block_actions",
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": team},
        "api_app_id": "AFAKE",
        "trigger_id": trigger,
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            "thread_ts": message.thread_ts,
        },
        "channel": {"id": message.channel, "name": "ops"},
        "message": {
            "type": "message",
            "ts": message.ts,
            "thread_ts": message.thread_ts,
            "text": message.text,
            "blocks": message.blocks,
            "bot_id": BOT_ID,
        },
        "response_url": "",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "deck-buttons",
                "value": button["value"],
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    view: dict[str, Any], *, user: str, values: dict[str, dict[str, str]], team: str = TEAM
) -> str:
    """`user` of `team` submits the modal `view`; `values`: block id -> action id -> text."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in fields.items()
        }
        for block, fields in values.items()
    }
    return _view_body("view_submission", {**view, "state": {"values": state}}, user, team)


def view_closed_body(view: dict[str, Any], *, user: str, team: str = TEAM) -> str:
    """`user` of `team` closes the modal `view` (sent when it has `notify_on_close`)."""
    return _view_body("view_closed", view, user, team, is_cleared=False)


def _view_body(kind: str, view: dict[str, Any], user: str, team: str, **extra: Any) -> str:
    payload = {
        "type": kind,
        "team": {"id": team, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "api_app_id": "AFAKE",
        "token": "unused",
        "trigger_id": f"view-{view.get('id')}-{time.time()}",
        "view": view,
        **extra,
    }
    return urlencode({"payload": json.dumps(payload)})
