"""Delivers the outbox: each message reaches its chat once, or the admin chat hears why not.

Every chat message goes through here (`send`): it gets an idempotency key
(`bot.delivery.sendkeys`), its row is queued on the write-behind, and it is sent at once — the
reply path waits for no commit. A message counts as delivered when the transport
returned its id. Until then it is retried with growing pauses; after the last attempt
it stays in the table as undelivered and the admin chat is told (unless it was itself
for the admin chat). Any process can deliver, for the chats whose transport it runs.

A send whose answer was lost (a timeout, a dropped connection after the request went
out) may have arrived. Before sending it again we look: where the platform can find a
message by its key (Slack's message metadata) the message is resent only if it is not
there. Where it cannot (Telegram) the message is not resent — a duplicate is worse
than asking — and the admin chat is told which message may be missing
(`unconfirmed`). Only failures that provably did not reach the platform (refused
connection, a refused request, a server error answered, a rate limit) are retried
blindly; a rate limit's own wait is kept when it is longer than the pause. A message
the platform refused for what it is (`Refused`: a chat not found, a text it cannot take)
is not tried again: it is marked undelivered at once and the admin chat is told.

Notices to the admin chat (`tell_admin`) are stored under a key naming what they are
about and delivered the same way; one that fails is not itself reported to the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.delivery import sendkeys
from bot.delivery.direct import Direct
from bot.delivery.transport_links import TransportLinks
from bot.errors import DeliveryUncertain, Refused, RetryLater, TransportDown
from bot.text import plain_text, span_from_json, span_to_json
from bot.types import Button, ButtonStyle, MessageRef, Outgoing, Queued, Sent
from storage.clock import Clock
from storage.models import OutboxMessage, OutboxState
from storage.outbox import OutboxStore

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0, 1800.0)  # pauses before attempts 2, 3, …
SEND_TIMEOUT_SECONDS = 30.0
LOOK_BACK = timedelta(minutes=1)  # a message is looked for from a little before its row
POLL_SECONDS = 30.0  # rows put by other processes are noticed at least this often
ADMIN_SUBJECT = "admin"

Delivered = Callable[[OutboxMessage, MessageRef], Awaitable[None]]


def to_payload(message: Outgoing) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": [span_to_json(span) for span in message.text],
        "buttons": [[b.label, b.action_id, b.value, b.style.value] for b in message.buttons],
    }
    if message.sent_parts:
        payload["parts_sent"] = list(message.sent_parts)
    if message.files:
        payload["files"] = list(message.files)
    return payload


def from_payload(row: OutboxMessage) -> Outgoing:
    text = tuple(span_from_json(stored) for stored in row.payload.get("text", []))
    buttons = tuple(
        Button(label, action, value, ButtonStyle(style))
        for label, action, value, style in row.payload.get("buttons", [])
    )
    parts = tuple(str(part) for part in row.payload.get("parts_sent", []))
    return Outgoing(
        chat=row.chat_id,
        thread=row.thread_id,
        text=text,
        buttons=buttons,
        key=row.key,
        sent_parts=parts,
        files=tuple(str(path) for path in row.payload.get("files", [])),
    )


def with_parts_sent(message: Outgoing, exc: BaseException) -> Outgoing | None:
    """The message with the parts this failed attempt delivered; None if it sent none."""
    parts = getattr(exc, "parts_sent", ())
    if len(parts) <= len(message.sent_parts):
        return None
    return replace(message, sent_parts=tuple(parts))


def uncertain(exc: BaseException) -> bool:
    """Whether a failed send may still have reached the platform."""
    return isinstance(exc, (DeliveryUncertain, TimeoutError))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def pause_after(exc: BaseException, backoff: float) -> timedelta:
    """The pause before the next attempt: the backoff, or the wait the platform asked for."""
    asked = exc.seconds if isinstance(exc, RetryLater) else 0.0
    return timedelta(seconds=max(backoff, asked))


class Outbox:
    def __init__(
        self,
        *,
        store: OutboxStore,
        direct: Direct,
        clock: Clock,
        admin_chat: str,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
        links: TransportLinks | None = None,
        on_delivered: Sequence[Delivered] = (),
        wake: asyncio.Event | None = None,
    ) -> None:
        """`on_delivered`: called once a message is delivered (a run's report marks its run
        delivered). `wake`, once set, makes the outbox look for due messages at once (the
        transport links set it when a transport is back)."""
        self._store = store
        self._direct = direct
        self._clock = clock
        self._admin_chat = admin_chat
        self._backoff = backoff
        self._links = links
        self._delivered = tuple(on_delivered)
        self._wake = wake or asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Outbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def start_delivering(self) -> int:
        """Once the transports run: deliver what a previous process left, then keep going.

        Messages waiting for a retry are tried at once (a restart is a good moment);
        returns how many were attempted.
        """
        attempted = await self.pump(backoff_over=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox")
        return attempted

    def wake(self) -> None:
        """Look for due messages now (a transport is back)."""
        self._wake.set()

    # --- the chat path ---------------------------------------------------------------

    async def send(self, message: Outgoing, *, retry: bool = True) -> Sent:
        """Record the message behind and send it now; if that fails it is kept and retried.

        Returns `Queued` when it did not go out now (the outbox delivers it later). With
        `retry=False` a send that provably failed is given up at once (still recorded),
        and one that may have arrived is looked for as usual.
        """
        subject = message.key or ""  # a key chosen by the caller says what it is about
        key = message.key or sendkeys.next_key()
        if sendkeys.replaying():
            row = await self._store.get(key)
            if row is not None:
                return self._already(row)
        message = replace(self._direct.scrub(message), key=key)
        name = message.chat.partition(":")[0]
        up = self._links is None or self._links.is_up(name)
        self._store.record(
            key,
            chat=message.chat,
            thread=message.thread,
            payload=to_payload(message),
            sending=up,
            subject=subject,
        )
        if not up:
            if not retry:
                self._store.given_up_behind(key, f"{name} is down")
                return Queued(f"{name} is down; the message is not sent later either")
            self._wake.set()
            return Queued(f"{name} is down; the message waits in the outbox")
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                ref = await self._direct.deliver(message)
        except Exception as exc:
            await self._inline_failed(key, message, exc, retry=retry)
            return Queued(f"not delivered yet ({describe(exc)}); kept in the outbox", exc)
        self._store.sent_behind(key, ref.message_id)
        return ref

    async def _inline_failed(
        self, key: str, message: Outgoing, exc: Exception, *, retry: bool
    ) -> None:
        error = describe(exc)
        transport = message.chat.partition(":")[0]
        log.warning("sending %s failed (%s); the outbox goes on with it", key, error)
        if uncertain(exc):
            self._store.in_doubt_behind(key, error)
        elif isinstance(exc, Refused):
            self._store.given_up_behind(key, error)
            await self._tell_refused(key, message.chat, exc)
        elif not retry:
            self._store.given_up_behind(key, error)
        else:
            when = self._clock.now() + pause_after(exc, self._backoff[0])
            progressed = with_parts_sent(message, exc)
            payload = None if progressed is None else to_payload(progressed)
            self._store.failed_behind(key, when, error, payload=payload)
        if isinstance(exc, TransportDown) and self._links is not None:
            self._links.down(transport, error)
        self._wake.set()

    def _already(self, row: OutboxMessage) -> Sent:
        if row.state == OutboxState.SENT and row.message_id is not None:
            return MessageRef(row.chat_id, row.message_id, row.thread_id)
        return Queued(f"{row.key} is with the outbox ({row.state})")

    async def put(self, key: str, message: Outgoing, *, subject: str = "") -> bool:
        """Store a message for delivery (once per key); False if the key was stored before."""
        fresh = await self._store.put(
            key,
            chat=message.chat,
            thread=message.thread,
            payload=to_payload(self._direct.scrub(message)),  # stored: no secret values
            subject=subject,
        )
        self._wake.set()
        return fresh

    async def tell_admin(self, key: str, text: str) -> None:
        if not self._admin_chat:
            log.warning("no [deck] admin_chat to tell: %s", text)
            return
        await self.put(key, Outgoing.plain(self._admin_chat, text), subject=ADMIN_SUBJECT)

    async def pump(self, *, backoff_over: bool = False) -> int:
        """Attempt every message that is due now; return how many were attempted."""
        names = self._direct.names()
        if self._links is not None:
            names = self._links.up_names(names)
        await self._store.settle()  # the chat path's rows and marks are written behind
        rows = await self._store.due(names, backoff_over=backoff_over)
        attempted = 0
        for row in rows:
            doubtful = row.state != OutboxState.PENDING  # an earlier attempt may have arrived
            if await self._store.lease(row):
                attempted += 1
                await self._attempt(row, doubtful=doubtful)
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

    async def _attempt(self, row: OutboxMessage, *, doubtful: bool) -> None:
        message = from_payload(row)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                ref = await self._look_up(row, message) if doubtful else None
                if ref is None:
                    ref = await self._direct.deliver(message)
        except Exception as exc:
            await self._failed(row, exc, with_parts_sent(message, exc))
            return
        await self._store.sent(row, ref.message_id)
        for callback in self._delivered:
            try:
                await callback(row, ref)
            except Exception:
                log.exception("after delivering %s", row.key)

    async def _look_up(self, row: OutboxMessage, message: Outgoing) -> MessageRef | None:
        """An earlier attempt may have arrived: find it, or say we cannot know."""
        if not self._direct.can_look_up(row.chat_id):
            raise DeliveryUncertain(row.last_error or "an earlier attempt was cut short")
        found = await self._direct.find_sent(message, row.created_at - LOOK_BACK)
        if found is not None:
            log.info("%s had arrived after all; not sent again", row.key)
        return found

    async def _failed(
        self, row: OutboxMessage, exc: Exception, progressed: Outgoing | None = None
    ) -> None:
        error = describe(exc)
        if isinstance(exc, TransportDown) and self._links is not None:
            self._links.down(row.chat_id.partition(":")[0], error)
        if uncertain(exc) and not self._direct.can_look_up(row.chat_id):
            await self._unconfirmed(row, error)
            return
        if isinstance(exc, Refused):
            log.warning("%s was refused (%s); not sent again", row.key, error)
            await self._store.give_up(row, error)
            if row.subject != ADMIN_SUBJECT:
                await self._tell_refused(row.key, row.chat_id, exc)
            return
        if row.attempts <= len(self._backoff):
            pause = pause_after(exc, self._backoff[row.attempts - 1])
            log.warning("delivery of %s failed (attempt %d): %s", row.key, row.attempts, error)
            state = OutboxState.IN_DOUBT if uncertain(exc) else OutboxState.PENDING
            payload = None if progressed is None else to_payload(progressed)
            await self._store.retry_at(row, self._clock.now() + pause, error, state, payload)
            return
        log.error("giving up on %s after %d attempts: %s", row.key, row.attempts, error)
        await self._store.give_up(row, error)
        if row.subject != ADMIN_SUBJECT:
            await self.tell_admin(
                f"undelivered:{row.key}",
                f"A message to {row.chat_id} ({row.subject or row.key}) could not be delivered "
                f"after {row.attempts} attempts: {error[:300]}. It is kept in the outbox.",
            )

    async def _tell_refused(self, key: str, chat: str, exc: Refused) -> None:
        """Once per message (the notice's key names it): the platform will never take it.
        A notice to the admin that is refused itself is not reported (its subject says so)."""
        await self.tell_admin(
            f"refused:{key}",
            f"A message to {chat} was refused by the platform ({str(exc)[:300]}); "
            "it is not sent again and is kept in the outbox as undelivered.",
        )

    async def _unconfirmed(self, row: OutboxMessage, error: str) -> None:
        """It may have arrived and the platform cannot say: not resent; the admin is asked."""
        log.error("%s may or may not have arrived (%s); not sent again", row.key, error)
        await self._store.give_up(row, error, OutboxState.UNCONFIRMED)
        if row.subject == ADMIN_SUBJECT:
            return
        preview = plain_text(from_payload(row).text)[:200]
        await self.tell_admin(
            f"unconfirmed:{row.key}",
            f"A message to {row.chat_id} may not have arrived: the platform did not answer "
            f"({error[:200]}) and cannot tell whether it got it, so it was not sent again "
            f"to avoid a duplicate. It read: {preview}",
        )
