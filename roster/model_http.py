"""Chat completions over one persistent aiohttp session: the model client's hot path.

A chat completion is one JSON POST, or one server-sent-event stream. The SDK's request
path (`AsyncOpenAI.post`) builds an options model, an httpx request with its headers
and URL objects, then hands it to aiohttp through an httpx transport, and wraps the
answer back: a py-spy profile of `bench.telegram_bench` put about a fifth of the event
loop's time per llm message there. Here the request goes to aiohttp at once, keeping
what the SDK's path gave: its retries (connection failures, timeouts, 408, 409, 429 and
5xx, `x-should-retry`, `retry-after`, the same backoff), its timeouts (connect, and each
read), and an error that says which of those happened (`ModelUnavailable` for what
another model may not have, `ModelError` for a refusal). The SDK stays for the rarer
calls (transcriptions, the model list).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from roster.errors import ModelError, ModelUnavailable

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
REDIRECTS = 300  # a status below it is a success
NOT_FOUND = 404
RATE_LIMITED = 429
SERVER_ERRORS = 500
RETRIED = frozenset({408, 409, 429})  # and every 5xx, as the SDK retries them
MAX_RETRY_AFTER = 60.0  # a longer `retry-after` is not waited for (the SDK's rule)
CONNECTIONS = 1000  # the SDK's default connection limit


class ChatEndpoint:
    """`POST {base_url}/chat/completions` with the SDK's retries; errors as `ModelError`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        section: str,
    ) -> None:
        base = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        self.url = base.rstrip("/") + "/chat/completions"
        self._headers = _headers(api_key or os.environ.get("OPENAI_API_KEY") or "")
        self._timeout = timeout
        self._max_retries = max_retries
        self._section = section
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, body: dict[str, Any]) -> Any:
        """The completion's JSON; `ModelError("... malformed response.")` for what is not JSON."""
        response = await self._post(body)
        try:
            async with response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure(exc) from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ModelError("The model API sent a malformed response.") from exc

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[Any]:
        """Send the request (retried as needed); then each event's JSON until `[DONE]`.

        A break in the stream is not retried (`ModelUnavailable`), nor an error the stream
        itself sends (`ModelError`).
        """
        return self._read(await self._post(body))

    async def _read(self, response: aiohttp.ClientResponse) -> AsyncIterator[Any]:
        try:
            async with response:
                async for data in _events(response):
                    if data.startswith("[DONE]"):
                        return
                    yield _chunk(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure(exc) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """The response of a successful status, after the retries the failures allow."""
        data = json.dumps(body, ensure_ascii=False).encode()
        retries = 0
        while True:
            try:
                response = await self._send(data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if retries >= self._max_retries:
                    raise self._failure(exc) from exc
                wait = _backoff(retries, None)
            else:
                if response.status < REDIRECTS:  # any success
                    return response
                async with response:
                    text = await _text(response)
                if retries >= self._max_retries or not _retried(response):
                    raise self._status_error(response.status, text)
                wait = _backoff(retries, response.headers)
            retries += 1
            log.info(
                "model API request failed; retrying in %.2f s (%d of %d)",
                wait,
                retries,
                self._max_retries,
            )
            await asyncio.sleep(wait)

    async def _send(self, data: bytes) -> aiohttp.ClientResponse:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_connect=self._timeout, sock_read=self._timeout
        )
        return await self._session.post(self.url, data=data, headers=self._headers, timeout=timeout)

    def _failure(self, exc: BaseException) -> ModelUnavailable:
        """A request that got no answer: too slow, or no connection."""
        refused = isinstance(exc, aiohttp.ClientConnectorError) or (
            isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
        )
        if isinstance(exc, TimeoutError) and not refused:
            return ModelUnavailable(f"The model API did not answer within {self._timeout:g} s.")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return ModelUnavailable("The model API broke off its answer.")
        return ModelUnavailable(f"The model API cannot be reached; check {self._section} base_url.")

    def _status_error(self, status: int, text: str) -> ModelError:
        if status == NOT_FOUND and "/v1" not in _path(self.url):
            return ModelError(
                f"The model API answered 404 at {_where(self.url)}: does {self._section} "
                "base_url need /v1 at its end?"
            )
        failed = status == RATE_LIMITED or status >= SERVER_ERRORS
        error = ModelUnavailable if failed else ModelError
        return error(f"The model API answered {status}: {_short(_status_message(status, text))}")


def _headers(api_key: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    # Read from the environment as the SDK reads them.
    if organization := os.environ.get("OPENAI_ORG_ID"):
        headers["OpenAI-Organization"] = organization
    if project := os.environ.get("OPENAI_PROJECT_ID"):
        headers["OpenAI-Project"] = project
    return headers


async def _text(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.read()).decode("utf-8", "replace").strip()
    except (aiohttp.ClientError, TimeoutError):
        return ""


def _retried(response: aiohttp.ClientResponse) -> bool:
    """The SDK's rule: the server's `x-should-retry` first, then the status."""
    should = response.headers.get("x-should-retry")
    if should in ("true", "false"):
        return should == "true"
    return response.status in RETRIED or response.status >= SERVER_ERRORS


def _backoff(retries: int, headers: Any) -> float:
    """The SDK's pause before a retry: the server's `retry-after` if sane, else 0.5 s
    doubling up to 8 s, less up to a quarter of jitter."""
    asked = _retry_after(headers) if headers is not None else None
    if asked is not None and 0 < asked <= MAX_RETRY_AFTER:
        return asked
    pause = min(0.5 * 2.0**retries, 8.0)
    return pause * (1 - 0.25 * random.random())  # noqa: S311 (jitter, not a secret)


def _retry_after(headers: Any) -> float | None:
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        if (seconds := headers.get("retry-after")) is not None:
            return float(seconds)
    except ValueError:
        return None  # an HTTP date: the SDK's backoff is near enough
    return None


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The `data` of each server-sent event (lines joined by newlines), as the SDK reads them."""
    pending = b""
    data: list[str] = []
    async for piece in response.content.iter_any():
        pending += piece
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode()
            if not line:  # the end of an event
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _chunk(data: str) -> Any:
    """One event's JSON; an error the API sends in the stream becomes a `ModelError`."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ModelError("The model API sent a malformed stream.") from exc
    if isinstance(chunk, dict) and chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        raise ModelError(f"The model API failed: {_short(message)}")
    return chunk


def _status_message(status: int, text: str) -> str:
    """The SDK's text for an error status: the code and the parsed body."""
    try:
        return f"Error code: {status} - {json.loads(text)}"
    except ValueError:
        return text or f"Error code: {status}"


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def _where(url: str) -> str:
    """A URL without what may hold credentials (user info, query)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
