"""The Web API calls the Slack transport makes, with Slack's errors translated to ours.

`AsyncWebClient` does the retrying: a 429 waits for `Retry-After` and tries again, a
dropped connection is tried again with backoff. What still fails becomes a
`TransportError` (`SlackRefused` when Slack answered `ok: false`, with its code).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import TransportError
from bot.transports.slack.inbound import BotIdentity
from bot.transports.slack.render import Rendered

DEFAULT_API = "https://slack.com/api/"
NETWORK_RETRIES = 2
RATE_LIMIT_RETRIES = 3


class SlackRefused(TransportError):
    """Slack answered a Web API call with `ok: false`."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"Slack refused {method}: {code}")
        self.method = method
        self.code = code


@contextlib.contextmanager
def translated(method: str) -> Iterator[None]:
    """Turn slack_sdk and aiohttp errors into ours, naming the call (never the token)."""
    try:
        yield
    except SlackApiError as exc:
        raise SlackRefused(method, str(exc.response.get("error") or "unknown_error")) from None
    except (aiohttp.ClientError, SlackClientError, TimeoutError) as exc:
        raise TransportError(f"Slack {method} failed: {type(exc).__name__}: {exc}") from None


def make_client(
    token: str, *, base_url: str, timeout: float, session: aiohttp.ClientSession
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=(base_url or DEFAULT_API).rstrip("/") + "/",
        timeout=math.ceil(timeout),
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=NETWORK_RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


class SlackWeb:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def whoami(self) -> BotIdentity:
        with translated("auth.test"):
            answer = await self.client.auth_test()
        return BotIdentity(
            user_id=str(answer.get("user_id") or ""),
            bot_id=str(answer.get("bot_id") or ""),
            team_id=str(answer.get("team_id") or ""),
            name=str(answer.get("user") or ""),
        )

    async def open_socket(self, app_token: str) -> str:
        """A fresh Socket Mode WebSocket URL (`apps.connections.open`, with the app token)."""
        with translated("apps.connections.open"):
            answer = await self.client.apps_connections_open(app_token=app_token)
        return str(answer["url"])

    async def post(self, channel: str, message: Rendered, thread_ts: str | None) -> str:
        with translated("chat.postMessage"):
            answer = await self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=list(message.blocks) or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(answer["ts"])

    async def update(self, channel: str, ts: str, message: Rendered) -> None:
        with translated("chat.update"):
            await self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=list(message.blocks)
            )

    async def delete(self, channel: str, ts: str) -> None:
        with translated("chat.delete"):
            await self.client.chat_delete(channel=channel, ts=ts)

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        with translated("chat.postEphemeral"):
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            )

    async def upload(self, channel: str, thread_ts: str | None, content: str) -> None:
        with translated("files.upload"):
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=content,
                filename="agentdeck-output.txt",
                title="Full output",
            )

    async def respond(self, response_url: str, text: str) -> None:
        """Answer a slash command only its sender sees (works where the bot is not a member)."""
        hook = AsyncWebhookClient(
            response_url, timeout=self.client.timeout, session=self.client.session
        )
        with translated("response_url"):
            answer = await hook.send(text=text, response_type="ephemeral")
        if answer.status_code != 200:
            raise SlackRefused("response_url", f"HTTP {answer.status_code}")
