"""The Web API calls the Slack transport makes, with Slack's errors translated to ours.

`AsyncWebClient` does the retrying: a 429 waits for `Retry-After` and tries again, a
connection that could not be opened is tried again with backoff. A connection dropped
after the request went out is *not* retried here: the message may be posted already,
and the outbox looks for it by its key (message metadata) before posting again. What
still fails becomes a `TransportError`: `SlackRefused` when Slack answered `ok: false`
(`TokenRefused`, also a `TransportDown`, when it refused our token), `TransportDown`
when Slack could not be reached, `DeliveryUncertain` when the answer was lost.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import DeliveryUncertain, TransportDown, TransportError
from bot.transports.slack.inbound import SlackBotIdentity
from bot.transports.slack.render import Rendered

DEFAULT_API = "https://slack.com/api/"
NETWORK_RETRIES = 2
RATE_LIMIT_RETRIES = 3
HTTP_SERVER_ERROR = 500
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}
METADATA_EVENT = "agentdeck_message"  # the metadata type our messages carry their key in
LOOK_BACK_MESSAGES = 200  # how far back a lost message is looked for


class SlackRefused(TransportError):
    """Slack answered a Web API call with `ok: false`."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"Slack refused {method}: {code}")
        self.method = method
        self.code = code


class TokenRefused(SlackRefused, TransportDown):
    """Slack refused our token (revoked, wrong): nothing works until it takes it again."""


class NotConnected(AsyncRetryHandler):
    """Retry only when no connection was made: then the request provably never left."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return isinstance(error, aiohttp.ClientConnectorError)


@contextlib.contextmanager
def translated(method: str) -> Iterator[None]:
    """Turn slack_sdk and aiohttp errors into ours, naming the call (never the token)."""
    try:
        yield
    except SlackApiError as exc:
        code = str(exc.response.get("error") or "unknown_error")
        if code in REFUSED_TOKEN:
            raise TokenRefused(method, code) from None
        if exc.response.status_code >= HTTP_SERVER_ERROR:  # Slack failed mid-way, maybe after
            status = exc.response.status_code
            raise DeliveryUncertain(f"Slack {method} failed: HTTP {status}") from None
        raise SlackRefused(method, code) from None
    except aiohttp.ClientConnectorError as exc:
        raise TransportDown(f"Slack {method}: cannot connect: {exc}") from None
    except (aiohttp.ClientError, SlackClientError, TimeoutError) as exc:
        raise DeliveryUncertain(f"Slack {method} failed: {type(exc).__name__}: {exc}") from None


def make_client(
    token: str, *, base_url: str, timeout: float, session: aiohttp.ClientSession
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=(base_url or DEFAULT_API).rstrip("/") + "/",
        timeout=math.ceil(timeout),
        session=session,
        retry_handlers=[
            NotConnected(max_retry_count=NETWORK_RETRIES),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


class SlackWeb:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def whoami(self) -> SlackBotIdentity:
        with translated("auth.test"):
            answer = await self.client.auth_test()
        return SlackBotIdentity(
            user_id=str(answer.get("user_id") or ""),
            bot_id=str(answer.get("bot_id") or ""),
            team_id=str(answer.get("team_id") or ""),
            name=str(answer.get("user") or ""),
            enterprise_id=str(answer.get("enterprise_id") or ""),
        )

    async def user_info(self, user: str) -> dict[str, Any]:
        """`users.info` (scope `users:read`): the person's team and whether a guest."""
        with translated("users.info"):
            answer = await self.client.users_info(user=user)
        person: dict[str, Any] = answer.get("user") or {}
        return person

    async def open_socket(self, app_token: str) -> str:
        """A fresh Socket Mode WebSocket URL (`apps.connections.open`, with the app token)."""
        with translated("apps.connections.open"):
            answer = await self.client.apps_connections_open(app_token=app_token)
        return str(answer["url"])

    async def post(
        self, channel: str, message: Rendered, thread_ts: str | None, key: str | None = None
    ) -> str:
        """Post; `key` goes along as message metadata, so the message can be found again."""
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"key": key}} if key else None
        with translated("chat.postMessage"):
            answer = await self.client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=list(message.blocks) or None,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata=metadata,
            )
        return str(answer["ts"])

    async def find_posted(
        self, channel: str, thread_ts: str | None, key: str, oldest: float
    ) -> str | None:
        """The ts of our message carrying `key` (posted since `oldest`), if Slack has it."""
        with translated("conversations.history"):
            if thread_ts:
                answer = await self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=LOOK_BACK_MESSAGES,
                )
            else:
                answer = await self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=LOOK_BACK_MESSAGES,
                )
        for message in answer.get("messages") or []:
            if _key_of(message) == key:
                return str(message["ts"])
        return None

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """`views.open`: show a modal to the person whose press gave `trigger_id`."""
        with translated("views.open"):
            await self.client.views_open(trigger_id=trigger_id, view=view)

    async def update(self, channel: str, ts: str, message: Rendered) -> None:
        with translated("chat.update"):
            await self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=list(message.blocks)
            )

    async def delete(self, channel: str, ts: str) -> None:
        with translated("chat.delete"):
            await self.client.chat_delete(channel=channel, ts=ts)

    async def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None,
        blocks: tuple[dict[str, Any], ...] = (),
    ) -> str:
        """Post what only `user` sees (not kept by Slack: it cannot be edited or found)."""
        with translated("chat.postEphemeral"):
            answer = await self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text,
                thread_ts=thread_ts,
                blocks=list(blocks) or None,
            )
        return str(answer.get("message_ts") or "")

    async def upload(self, channel: str, thread_ts: str | None, content: str) -> None:
        with translated("files.upload"):
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=content,
                filename="agentdeck-output.txt",
                title="Full output",
            )

    async def upload_file(
        self, channel: str, thread_ts: str | None, name: str, content: bytes, comment: str
    ) -> str:
        """A file an agent sends back, with its text as the comment; the file's id."""
        with translated("files.upload"):
            answer = await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=content,
                filename=name,
                title=name,
                initial_comment=comment or None,
            )
        file = answer.get("file") or {}
        return str(file.get("id") or "")

    async def respond(
        self, response_url: str, text: str, blocks: tuple[dict[str, Any], ...] = ()
    ) -> None:
        """Answer a slash command only its sender sees (works where the bot is not a member)."""
        hook = AsyncWebhookClient(
            response_url, timeout=self.client.timeout, session=self.client.session
        )
        with translated("response_url"):
            answer = await hook.send(
                text=text, blocks=list(blocks) or None, response_type="ephemeral"
            )
        if answer.status_code != 200:
            raise SlackRefused("response_url", f"HTTP {answer.status_code}")


def _key_of(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != METADATA_EVENT:
        return None
    key = (metadata.get("event_payload") or {}).get("key")
    return str(key) if key else None
