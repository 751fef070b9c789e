"""python-telegram-bot's request backend on aiohttp: one session, bounded connections.

PTB's default httpx backend slows down sharply with many requests in flight; one
aiohttp session with a connection limit keeps hundreds of sends a second cheap.
Bodies go as JSON (as the Bot API accepts), multipart only when a file is attached.

A 5xx says here whether the call may have been carried out; PTB makes every 5xx the
same `NetworkError` a dropped connection is. The Bot API's own answer (its JSON body,
`"ok": false`) or any other server error page means it was not: `ServerFailed`, safe
to send again. A proxy's own 502 or 504 page (no Bot API answer in it) may hide a
call the Bot API behind it did carry out (a self-hosted server behind nginx: the
upstream timed out or closed after the request went in): a plain `NetworkError`, as
uncertain as a lost answer.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class NotSent(NetworkError):
    """No connection to the Bot API could be made: the request provably never left."""


class ServerFailed(NetworkError):
    """The Bot API answered with a server error (5xx): the call was not carried out."""


SERVER_ERROR = 500
# A proxy's page with these may stand for a call the Bot API behind it carried out.
GATEWAY_UNSURE = frozenset({HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT})


JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": BaseRequest.USER_AGENT}
FORM_HEADERS = {"User-Agent": BaseRequest.USER_AGENT}


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` sharing one `aiohttp.ClientSession`; every request has a deadline."""

    __slots__ = ("_connect_timeout", "_connections", "_read_timeout", "_session", "_write_timeout")

    def __init__(
        self,
        *,
        connections: int,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("Accept",)
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(  # noqa: PLR0917 (the signature is PTB's)
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            raise RuntimeError("AiohttpRequest is not initialized")
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout)
        data, headers = _body(request_data)
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(f"Cannot connect to the Bot API ({_endpoint(url)}): {exc}") from exc
        except TimeoutError as exc:
            raise TimedOut(f"Timed out talking to the Bot API ({method} {_endpoint(url)})") from exc
        except aiohttp.ClientError as exc:
            detail = str(exc).replace(url, _endpoint(url))
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {detail}") from exc
        if status >= SERVER_ERROR:
            raise server_error(status, body)
        return status, body

    def _timeout(
        self,
        read: ODVInput[float],
        write: ODVInput[float],
        connect: ODVInput[float],
        pool: ODVInput[float],
    ) -> aiohttp.ClientTimeout:
        """Per-call deadlines; the total bounds the whole exchange (never unbounded)."""
        read_s = _seconds(read, self._read_timeout)
        write_s = _seconds(write, self._write_timeout)
        connect_s = _seconds(connect, self._connect_timeout)
        pool_s = _seconds(pool, self._connect_timeout)
        return aiohttp.ClientTimeout(
            total=read_s + write_s + connect_s + pool_s,
            connect=connect_s + pool_s,
            sock_connect=connect_s,
            sock_read=read_s,
        )


def _seconds(value: ODVInput[float], default: float) -> float:
    if isinstance(value, DefaultValue) or value is None:
        return default
    return float(value)


def _body(
    request_data: RequestData | None,
) -> tuple[bytes | aiohttp.FormData | None, dict[str, str]]:
    if request_data is None:
        return None, FORM_HEADERS
    if not request_data.contains_files:
        return request_data.json_payload, JSON_HEADERS
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, part in request_data.multipart_data.items():
        filename, content, mimetype = part
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form, FORM_HEADERS


def server_error(status: int, body: bytes) -> NetworkError:
    """A 5xx as the error that says whether the call may have been carried out."""
    answer = _bot_api_error(body)
    try:
        reason = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        reason = f"HTTP {status}"
    if answer is None and status in GATEWAY_UNSURE:
        return NetworkError(f"{reason} from a proxy; the call may have been carried out")
    if answer is None:
        return ServerFailed(f"{reason}; the call was not carried out")
    return ServerFailed(f"{answer} ({status}); the call was not carried out")


def _bot_api_error(body: bytes) -> str | None:
    """The description in a Bot API error answer (`{"ok": false, ...}`); None if not one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if not isinstance(answer, dict) or answer.get("ok") is not False:
        return None
    return str(answer.get("description") or answer.get("error_code") or "error")[:200]


def _endpoint(url: str) -> str:
    """The method name only: the URL holds the token, which must never reach a log."""
    return url.rsplit("/", 1)[-1]
