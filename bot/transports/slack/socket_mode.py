"""Socket Mode: events go straight to the inbox, as in HTTP mode; the rest through bolt.

bolt's handler builds a bolt request, a context with a Web API client of its own, runs the
middleware and matches every listener for each envelope; an event needs none of that
to be stored, and a burst pays it per event. An event is acknowledged (its envelope
answered) once stored; one that could not be stored is not, so Slack sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.errors import TransportError
from bot.transports.slack import shapes

log = logging.getLogger(__name__)

Events = Callable[[dict[str, Any]], Awaitable[None]]


class EventsFirst(AsyncSocketModeHandler):
    def __init__(self, *args: Any, events: Events, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events = events

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # as bolt ignores it
        payload = req.payload
        if req.type != "events_api" or payload.get("type") != "event_callback":
            await super().handle(client, req)
            return
        wrong = shapes.problem(payload)
        if wrong is not None:
            log.warning("slack: an event over the socket not taken: %s", wrong)
        else:
            try:
                await self._events(payload)
            except TransportError as exc:
                log.warning("slack: an event over the socket not acknowledged: %s", exc)
                return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
