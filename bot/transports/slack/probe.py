"""`agentdeck doctor`'s Slack check: do the tokens work, is the Web API reachable?

`auth.test` with the bot token, as the transport does at start; in Socket Mode also
`apps.connections.open` with the app token (it hands out a WebSocket URL and opens
nothing); in HTTP mode the signing secret must at least resolve.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp

from bot.config import SlackMode, SlackSection
from bot.errors import TransportError, TransportStartError
from bot.transports.slack.transport import REFUSED_TOKEN
from bot.transports.slack.web import SlackRefused, SlackWeb, make_client
from roster.errors import ReferenceNotFound
from roster.refs import SecretSource, resolve

T = TypeVar("T")


async def probe(settings: SlackSection, secrets: SecretSource) -> str:
    """`@name in team T… (socket)` when the tokens work; else `TransportStartError`."""
    bot_token = _credential(settings, "bot_token", secrets)
    async with aiohttp.ClientSession() as session:
        client = make_client(
            bot_token, base_url=settings.base_url, timeout=settings.timeout, session=session
        )
        web = SlackWeb(client)
        me = await _call(settings, "bot_token", web.whoami())
        if settings.mode is SlackMode.SOCKET:
            app_token = _credential(settings, "app_token", secrets)
            await _call(settings, "app_token", web.open_socket(app_token))
        else:
            _credential(settings, "signing_secret", secrets)
    return f"@{me.name} in team {me.team_id} ({settings.mode})"


def _credential(settings: SlackSection, key: str, secrets: SecretSource) -> str:
    try:
        return resolve(str(getattr(settings, key)), secrets)
    except ReferenceNotFound as exc:
        raise TransportStartError(f"slack.{key}: {exc}") from None


async def _call(settings: SlackSection, key: str, call: Awaitable[T]) -> T:
    """Await one Web API call; Slack's refusal or an unreachable API as one clear line."""
    try:
        return await call
    except SlackRefused as exc:
        if exc.code in REFUSED_TOKEN:
            prefix = "xoxb-" if key == "bot_token" else "xapp-"
            raise TransportStartError(
                f"Slack refused slack.{key} ({exc.code}): check it (it starts with {prefix})"
            ) from None
        raise TransportStartError(f"Slack {exc.method} failed: {exc.code}") from None
    except TransportError as exc:
        where = settings.base_url or "the Slack Web API"
        raise TransportStartError(f"Cannot reach {where}: {exc}") from None
