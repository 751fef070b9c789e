"""Getting updates: our own long-polling loop, or a small webhook server.

Exactly once: Telegram treats updates as delivered when the next `getUpdates` asks
for a higher offset (PTB's `Updater` does that before handling), so this loop hands
each batch to `take` — which stores it in the inbox — and only then moves the offset.
The webhook answers 200 only after the update is stored; anything else makes
Telegram deliver it again.

One update Telegram should never send (a shape python-telegram-bot cannot read) costs
that update alone: the batch is read one update at a time, the unreadable one is
skipped (the offset still moves past it, or it would come back forever), logged in one
line and reported (`on_unreadable`: the deck audits it); the others are handled.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from bot.transports.telegram.inbound import ALLOWED_UPDATES, UnreadableUpdate
from bot.transports.telegram.limits import retry_after_seconds
from bot.types import Incoming

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

Take = Callable[[Sequence[Update | Incoming]], Awaitable[None]]
Quick = Callable[[dict[str, Any]], Incoming | None]
Unreadable = Callable[[str], None]

POLL_SECONDS = 25  # long polling: Telegram holds the request open until updates come
BACKOFF_START_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
MAX_BODY_BYTES = 1 << 20
READ_MARGIN_SECONDS = 10.0  # a long poll's answer may take this much longer than its timeout


OUTAGE_AFTER_FAILURES = 2  # one failed poll is a hiccup; two in a row, an outage


class Poller:
    def __init__(
        self,
        bot: Bot,
        take: Take,
        *,
        poll_seconds: int = POLL_SECONDS,
        on_outage: Callable[[str], None] = lambda reason: None,
        on_unreadable: Unreadable = lambda why: None,
        routes: Callable[[Any], None] | None = None,
        quick: Quick = lambda data: None,
    ) -> None:
        self._bot = bot
        self._routes = routes  # what else this listener serves (webhook triggers)
        self._take = take
        self._quick = quick  # a plain message read without python-telegram-bot's parse
        self._poll_seconds = poll_seconds
        self._on_outage = (
            on_outage  # the transport's link is marked down (see bot.delivery.transport_links)
        )
        self._on_unreadable = on_unreadable
        self._offset: int | None = None
        self._failures = 0

    async def run(self) -> None:
        """Poll until cancelled; errors are logged and retried with backoff, never raised."""
        while True:
            try:
                await self._once()
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
            except Exception as exc:  # the loop must survive anything; it is the bot's ears
                await self._back_off(exc)

    async def _once(self) -> None:
        batch = await self._get_updates()
        updates, last = self._read(batch)
        if updates:
            await self._take(updates)  # stored before the next call confirms them
        if last is not None:
            self._offset = last + 1

    async def _get_updates(self) -> list[object]:
        """`getUpdates`, its answer left as JSON: `Bot.get_updates` parses the whole batch
        at once, so one bad update would fail (and log in full) every update with it."""
        params = {
            "offset": self._offset,
            "timeout": self._poll_seconds,
            "allowed_updates": list(ALLOWED_UPDATES),
        }
        result = await self._bot._post(  # the same call `get_updates` makes, unparsed
            "getUpdates", params, read_timeout=self._poll_seconds + READ_MARGIN_SECONDS
        )
        return result if isinstance(result, list) else []

    def _read(self, batch: list[object]) -> tuple[list[Update | Incoming], int | None]:
        """The readable updates of a batch, and the highest update id seen in it."""
        updates: list[Update | Incoming] = []
        last: int | None = None
        for data in batch:
            update_id = _update_id(data)
            if update_id is not None:
                last = update_id if last is None else max(last, update_id)
            quick = self._quick(data) if isinstance(data, dict) else None
            if quick is not None:
                updates.append(quick)
                continue
            try:
                updates.append(parse_update(data, self._bot))
            except UnreadableUpdate as exc:
                log.warning("getUpdates: an unreadable update skipped (%s)", exc)
                self._on_unreadable(str(exc))
        return updates, last

    async def _back_off(self, exc: Exception) -> None:
        self._failures += 1
        wait = min(BACKOFF_START_SECONDS * 2 ** (self._failures - 1), BACKOFF_MAX_SECONDS)
        if isinstance(exc, Conflict):
            reason = "another process is polling with this token, or a webhook is set"
        elif isinstance(exc, InvalidToken):
            reason = "the token was revoked"
        elif isinstance(exc, TelegramError):
            reason = exc.message
        else:
            log.error("handling received updates failed", exc_info=exc)
            reason = type(exc).__name__
        log.warning("getUpdates failed (%s); trying again in %.1f s", reason, wait)
        if self._failures >= OUTAGE_AFTER_FAILURES or isinstance(exc, InvalidToken):
            self._on_outage(reason)
        await asyncio.sleep(wait)


class WebhookServer:
    """Takes `POST <path>` from Telegram, checks the secret token header, stores, answers."""

    def __init__(
        self,
        bot: Bot,
        take: Take,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
        on_unreadable: Unreadable = lambda why: None,
        routes: Callable[[Any], None] | None = None,
        quick: Quick = lambda data: None,
    ) -> None:
        self._bot = bot
        self._routes = routes  # what else this listener serves (webhook triggers)
        self._take = take
        self._quick = quick  # a plain message read without python-telegram-bot's parse
        self._on_unreadable = on_unreadable
        self._listen = listen
        self._port = port
        self._path = path
        self._secret = secret.encode()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from aiohttp import web  # the server side of aiohttp: only in webhook mode

        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(self._path, self._post)
        if self._routes is not None:
            self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._listen, self._port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        from aiohttp import web

        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook call with a wrong secret token from %s", request.remote)
            return web.Response(status=403, text="forbidden")
        try:
            update = read_update(await request.read(), self._bot, self._quick)
            await self._take([update])
        except UnreadableUpdate as exc:  # only the secret's holder can send it: say why, briefly
            log.warning("webhook: not an update from %s (%s); answered 400", request.remote, exc)
            self._on_unreadable(str(exc))
            return web.Response(status=400, text="not an update")
        except Exception:  # not stored: a non-200 makes Telegram deliver it again
            log.exception("could not store a webhook update")
            return web.Response(status=500, text="try again")
        return web.Response(text="ok")


def read_update(body: bytes, bot: Bot, quick: Quick = lambda data: None) -> Update | Incoming:
    """A webhook body as an `Update` (or, for a plain private message, the `Incoming` that
    `quick` reads without PTB's parse); `UnreadableUpdate` for anything Telegram does not send."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise UnreadableUpdate(f"not JSON: {type(exc).__name__}") from None
    read = quick(data) if isinstance(data, dict) else None
    return read if read is not None else parse_update(data, bot)


def parse_update(data: object, bot: Bot) -> Update:
    """One update's JSON as an `Update`; `UnreadableUpdate` for what Telegram does not send."""
    if not isinstance(data, dict):
        raise UnreadableUpdate(f"a JSON {type(data).__name__}, not an object")
    update_id = _update_id(data)
    if update_id is None:
        raise UnreadableUpdate("no numeric update_id")
    try:
        return Update.de_json(data, bot)
    except Exception as exc:  # python-telegram-bot trusts the shape; any surprise is junk
        raise UnreadableUpdate(f"update {update_id}: {type(exc).__name__}") from None


def _update_id(data: object) -> int | None:
    update_id = data.get("update_id") if isinstance(data, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    return update_id
