"""Delivers the outbox: each message reaches its chat, or the admin chat hears why not.

A message counts as delivered when the transport returned its id. Until then it is
retried with growing pauses; after the last attempt it stays in the table as
undelivered and the admin chat is told (unless it was itself for the admin chat).
Any process can deliver, for the chats whose transport it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bot.postman import Postman
from bot.text import Span, Style
from bot.types import Button, ButtonStyle, MessageRef, Outgoing
from storage.clock import Clock
from storage.models import OutboxMessage
from storage.outbox import OutboxStore

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0, 1800.0)  # pauses before attempts 2, 3, …
SEND_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 30.0  # rows put by other processes are noticed at least this often
ADMIN_SUBJECT = "admin"

Delivered = Callable[[OutboxMessage, MessageRef], Awaitable[None]]


def to_payload(message: Outgoing) -> dict[str, Any]:
    return {
        "text": [[span.text, span.style.value, span.url] for span in message.text],
        "buttons": [[b.label, b.action_id, b.value, b.style.value] for b in message.buttons],
    }


def from_payload(row: OutboxMessage) -> Outgoing:
    text = tuple(Span(t, Style(style), url) for t, style, url in row.payload.get("text", []))
    buttons = tuple(
        Button(label, action, value, ButtonStyle(style))
        for label, action, value, style in row.payload.get("buttons", [])
    )
    return Outgoing(chat=row.chat_id, thread=row.thread_id, text=text, buttons=buttons)


class Outbox:
    def __init__(
        self,
        *,
        store: OutboxStore,
        postman: Postman,
        clock: Clock,
        admin_chat: str,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        self._store = store
        self._postman = postman
        self._clock = clock
        self._admin_chat = admin_chat
        self._backoff = backoff
        self._delivered: list[Delivered] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Outbox:
        self._task = asyncio.create_task(self._run(), name="outbox")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def on_delivered(self, callback: Delivered) -> None:
        """Call back once a message is delivered (e.g. to mark a run's report delivered)."""
        self._delivered.append(callback)

    async def put(self, key: str, message: Outgoing, *, subject: str = "") -> bool:
        """Store a message for delivery (once per key); False if the key was stored before."""
        fresh = await self._store.put(
            key,
            chat=message.chat,
            thread=message.thread,
            payload=to_payload(self._postman.scrub(message)),  # stored: no secret values
            subject=subject,
        )
        self._wake.set()
        return fresh

    async def tell_admin(self, key: str, text: str) -> None:
        if not self._admin_chat:
            log.warning("no [deck] admin_chat to tell: %s", text)
            return
        await self.put(key, Outgoing.plain(self._admin_chat, text), subject=ADMIN_SUBJECT)

    async def pump(self) -> int:
        """Attempt every message that is due now; return how many were attempted."""
        rows = await self._store.due(self._postman.names())
        attempted = 0
        for row in rows:
            if await self._store.lease(row):
                attempted += 1
                await self._attempt(row)
        return attempted

    async def _run(self) -> None:
        while True:
            try:
                await self.pump()
                delay = await self._pause()
            except Exception:
                log.exception("delivering the outbox failed; trying again")
                delay = self._backoff[0]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def _pause(self) -> float:
        upcoming = await self._store.next_due()
        if upcoming is None:
            return POLL_SECONDS
        wait = (upcoming - self._clock.now()).total_seconds()
        return min(max(wait, 0.01), POLL_SECONDS)

    async def _attempt(self, row: OutboxMessage) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                ref = await self._postman.send(from_payload(row))
        except Exception as exc:
            await self._failed(row, f"{type(exc).__name__}: {exc}")
            return
        await self._store.sent(row, ref.message_id)
        for callback in self._delivered:
            try:
                await callback(row, ref)
            except Exception:
                log.exception("after delivering %s", row.key)

    async def _failed(self, row: OutboxMessage, error: str) -> None:
        if row.attempts <= len(self._backoff):
            pause = timedelta(seconds=self._backoff[row.attempts - 1])
            log.warning("delivery of %s failed (attempt %d): %s", row.key, row.attempts, error)
            await self._store.retry_at(row, self._clock.now() + pause, error)
            return
        log.error("giving up on %s after %d attempts: %s", row.key, row.attempts, error)
        await self._store.give_up(row, error)
        if row.subject != ADMIN_SUBJECT:
            await self.tell_admin(
                f"undelivered:{row.key}",
                f"A message to {row.chat_id} ({row.subject or row.key}) could not be delivered "
                f"after {row.attempts} attempts: {error[:300]}. It is kept in the outbox.",
            )
