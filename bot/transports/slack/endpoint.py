"""HTTP mode's one URL: check Slack's signature first, then let bolt read the body.

Events (the mentions and messages of a burst) skip bolt: they go to the transport's
`take_event`, and are answered once stored (500 if that fails, so Slack sends them again).
Commands, presses and forms go through bolt, whose `ack` may carry an answer.

bolt parses a request's body before it checks the signature, so any stranger's junk
reached its JSON parser and came back as a 500 with a traceback in the log. Here the
signature (and its age) is checked over the raw bytes first: a request without a valid
one gets 401 and is not read. A signed request that still cannot be read (only Slack,
or whoever holds the signing secret, can send one) gets 400. Either way, one log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.errors import TransportError
from bot.transports.slack import shapes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # Slack's payloads are a few kB; a message's blocks at most ~100 kB


Events = Callable[[dict[str, Any]], Awaitable[None]]


class Endpoint:
    def __init__(self, app: AsyncApp, signing_secret: str, *, events: Events) -> None:
        self._app = app
        self._events = events
        self._verifier = SignatureVerifier(signing_secret)

    def application(self, path: str) -> web.Application:
        server = web.Application(client_max_size=MAX_BODY_BYTES)
        server.router.add_post(path, self.dispatch)
        return server

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if not self._signed(raw, request.headers):
            return _refuse(request, 401, "no valid Slack signature")
        try:
            body = parse(raw.decode("utf-8"), _media_type(request))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSON errors
            return _refuse(request, 400, f"unreadable body: {type(exc).__name__}")
        wrong = shapes.problem(body)
        if wrong is not None:
            return _refuse(request, 400, wrong)
        if body.get("type") == "event_callback":
            return await self._event(request, body)
        # Handed over parsed, as bolt takes Socket Mode's payloads: bolt then neither parses
        # it again (its form parsing drops a command whose text says "payload") nor checks
        # the signature again (mode only decides that).
        bolt_request = AsyncBoltRequest(
            body=body, query=request.query_string, headers=dict(request.headers), mode="socket_mode"
        )
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

    async def _event(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        try:
            await self._events(body)
        except TransportError as exc:
            log.warning("slack: an event from %s answered 500: %s", request.remote, exc)
            return web.Response(status=500, text="not stored; send it again")
        return web.Response()

    def _signed(self, raw: bytes, headers: Mapping[str, str]) -> bool:
        try:
            return self._verifier.is_valid(
                raw, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            )
        except (ValueError, TypeError):  # a timestamp that is not a number, a non-ASCII one
            return False


def parse(text: str, content_type: str) -> Any:
    """Slack's three ways to send: JSON (events), a form with a JSON `payload`
    (interactions), a plain form (slash commands)."""
    if content_type == "application/json" or text.startswith("{"):
        return json.loads(text)
    form = dict(parse_qsl(text, keep_blank_values=True))
    return json.loads(form["payload"]) if "payload" in form else form


def _media_type(request: web.Request) -> str:
    """`application/json` of `application/json; charset=utf-8`, without aiohttp's
    `content_type`, which builds an e-mail header parser per request."""
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def _refuse(request: web.Request, status: int, why: str) -> web.Response:
    log.warning("slack: request from %s answered %d: %s", request.remote, status, why)
    return web.Response(status=status, text="unauthorized" if status == 401 else "bad request")
