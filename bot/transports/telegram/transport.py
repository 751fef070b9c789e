"""The Telegram transport: python-telegram-bot's `Bot` for every call, our own loop around it.

Start: resolve the token, `getMe` (a bad token or an unreachable API is one clear
`TransportStartError`), then poll or serve the webhook while the command menu is set.
Every update is stored in the inbox before Telegram may consider it delivered, and
only updates not seen before are handed to the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Bot, BotCommand, Update
from telegram.error import InvalidToken, NetworkError, TelegramError

from bot import markdown
from bot.commands import Commands
from bot.config import TelegramMode, TelegramSection
from bot.credentials import derived_webhook_secret
from bot.errors import TransportError, TransportStartError
from bot.text import plain_text
from bot.transports.telegram import files
from bot.transports.telegram.inbound import (
    ALLOWED_UPDATES,
    NAME,
    Inbound,
    TelegramBotIdentity,
    UnreadableUpdate,
)
from bot.transports.telegram.limits import Pacer
from bot.transports.telegram.outbound import BotApiSender, translated
from bot.transports.telegram.receive import Poller, WebhookServer
from bot.transports.telegram.request import AiohttpRequest
from bot.types import (
    Attachment,
    Incoming,
    MessageRef,
    OnOutage,
    Outgoing,
    Routes,
    Sender,
    TextRequest,
)
from roster.errors import ReferenceNotFound
from roster.refs import NoSecrets, SecretSource, resolve
from storage.inbox import Inbox
from storage.tasks import TaskSet

log = logging.getLogger(__name__)

Handle = Callable[[Incoming], Awaitable[None]]

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_FILE_URL = "https://api.telegram.org/file/bot"
PRESS_ANSWER_SECONDS = 8.0  # a press the core left unanswered is answered quietly by then
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


def _unheard(reason: str) -> None:
    """Nobody listens for outages (a transport started on its own, in a test)."""


class TelegramTransport:
    name = NAME
    durable = True
    # Telegram shows "typing…" itself: a run shows a message only once it has output.
    has_typing = True

    def __init__(
        self,
        settings: TelegramSection,
        *,
        inbox: Inbox,
        commands: Commands,
        secrets: SecretSource | None = None,
        on_unreadable: Callable[[str], None] = lambda why: None,
    ) -> None:
        self._settings = settings
        self._routes: Routes | None = None  # more routes on the webhook's listener
        self._on_unreadable = on_unreadable  # an update skipped as unreadable: audited
        self._inbox = inbox
        self._commands = commands  # the client's command menu
        self._secrets = secrets or NoSecrets()
        self._bot: Bot | None = None
        self._sender: BotApiSender | None = None
        self._inbound: Inbound | None = None
        self._handle: Handle | None = None
        self._poller: asyncio.Task[None] | None = None
        self._webhook: WebhookServer | None = None
        self._tasks = TaskSet()
        self._unanswered: set[str] = set()
        self.username = ""
        # Told when polling fails for a while (the deck marks the link down and probes).
        self._on_outage: OnOutage = _unheard

    # -- lifecycle ---------------------------------------------------------------

    async def start(
        self,
        handle: Handle,
        *,
        on_outage: OnOutage = _unheard,
        postman: Sender | None = None,
        routes: Routes | None = None,
    ) -> None:
        """Receive (polling or webhook); `postman` is not used: Telegram posts nothing of
        its own accord. `routes` go on the webhook's listener (`bot.triggers`)."""
        # Opt in to PTB 23's time periods (timedelta); without it PTB warns on every 429.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        self._handle = handle
        self._on_outage = on_outage
        self._routes = routes
        bot = self._bot = self._make_bot(self._token())
        try:
            me = await self._introduce(bot)
            self._inbound = Inbound(me)
            self._sender = BotApiSender(bot, self._pacer())
            # The menu is only what the client shows: set it while receiving starts, not
            # before (one round trip to the Bot API less before the first getUpdates).
            self._tasks.spawn(self._register_commands(bot), name="telegram-command-menu")
            await self._start_receiving(bot)
        except BaseException:
            await self._tasks.cancel_all()
            await self._close()
            raise
        log.info("telegram: running as @%s (%s)", me.username, self._settings.mode)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._webhook is not None:
            await self._webhook.stop()
            self._webhook = None
        await self._tasks.cancel_all()
        await self._close()

    async def _close(self) -> None:
        if self._bot is not None:
            try:
                await self._bot.shutdown()
            except TelegramError:
                log.debug("closing the Bot API session failed", exc_info=True)

    def _token(self) -> str:
        try:
            return resolve(self._settings.token, self._secrets)
        except ReferenceNotFound as exc:
            raise TransportStartError(f"[telegram] token: {exc}") from None

    def _make_bot(self, token: str) -> Bot:
        connections = self._settings.max_connections
        return Bot(
            token,
            base_url=self._settings.base_url or DEFAULT_BASE_URL,
            base_file_url=self._settings.base_file_url or DEFAULT_FILE_URL,
            request=AiohttpRequest(connections=connections),
            get_updates_request=AiohttpRequest(connections=1),
        )

    def _pacer(self) -> Pacer:
        return Pacer(
            per_second=self._settings.messages_per_second,
            group_per_minute=self._settings.group_messages_per_minute,
        )

    async def _introduce(self, bot: Bot) -> TelegramBotIdentity:
        await introduce(bot, self._settings.base_url or DEFAULT_BASE_URL)
        return TelegramBotIdentity(bot.bot.id, bot.bot.username or "")

    async def _register_commands(self, bot: Bot) -> None:
        """The command menu the Telegram client shows: every chat command, with its help."""
        commands = [
            BotCommand(spec.name, plain_text(markdown.inline(spec.help))[:256] or spec.name)
            for spec in sorted(self._commands.values(), key=lambda spec: spec.name)
            if _COMMAND_NAME.match(spec.name)
        ]
        try:
            await bot.set_my_commands(commands)
        except TelegramError as exc:  # a missing menu is no reason not to run
            log.warning("setMyCommands failed: %s", exc.message)

    async def _start_receiving(self, bot: Bot) -> None:
        settings = self._settings
        if settings.mode is TelegramMode.POLLING:
            with translated("deleteWebhook"):
                await bot.delete_webhook()
            poller = Poller(
                bot,
                self._take_polled,
                on_outage=self._outage,
                on_unreadable=self._on_unreadable,
                quick=self._quick,
            )
            self._poller = asyncio.create_task(poller.run(), name="telegram-poller")
            return
        secret = self._webhook_secret()
        self._webhook = WebhookServer(
            bot,
            self._take,
            listen=settings.listen,
            port=settings.port,
            path=settings.path,
            secret=secret,
            on_unreadable=self._on_unreadable,
            routes=self._routes,
            quick=self._quick,
        )
        await self._webhook.start()
        try:
            await bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES)
            )
        except TelegramError as exc:
            raise TransportStartError(f"Telegram refused setWebhook: {exc.message}") from None

    def _webhook_secret(self) -> str:
        raw = self._settings.secret_token
        if not raw:  # derived from the token (and scrubbed like it: `bot.credentials`)
            return derived_webhook_secret(self._token())
        try:
            return resolve(raw, self._secrets)
        except ReferenceNotFound as exc:
            raise TransportStartError(f"[telegram] secret_token: {exc}") from None

    def _outage(self, reason: str) -> None:
        self._on_outage(reason)

    # -- receiving ---------------------------------------------------------------

    def _quick(self, data: dict[str, Any]) -> Incoming | None:
        return None if self._inbound is None else self._inbound.quick(data)

    async def _take(self, updates: Sequence[Update | Incoming]) -> None:
        """Store what is ours in the inbox, then hand over only what was not seen before."""
        await self._store_and_hand_over(self._ours(updates))

    async def _store_and_hand_over(self, batch: dict[str, Incoming]) -> None:
        if batch:
            fresh = await self._inbox.accept([(key, item.to_json()) for key, item in batch.items()])
            await self._hand_over(batch, fresh)

    async def _take_polled(self, updates: Sequence[Update | Incoming]) -> None:
        """Polling: where the inbox can tell new from seen at once, the work starts while
        the rows are written; the next `getUpdates` (the acknowledgement) waits for them."""
        batch = self._ours(updates, skip_unreadable=True)
        items = [(key, item.to_json()) for key, item in batch.items()]
        quick = self._inbox.accept_quickly(items) if batch else None
        if quick is None:
            await self._store_and_hand_over(batch)
            return
        fresh, stored = quick
        await self._hand_over(batch, fresh)
        await stored

    def _ours(
        self, updates: Sequence[Update | Incoming], *, skip_unreadable: bool = False
    ) -> dict[str, Incoming]:
        """Our updates by key. An unreadable one fails a webhook call (answered 400); in a
        polled batch it is skipped alone, logged and reported, and the others go on."""
        assert self._inbound is not None
        batch: dict[str, Incoming] = {}
        for update in updates:
            if isinstance(update, Incoming):  # read already (`Inbound.quick`)
                batch.setdefault(update.update_key or "", update)
                continue
            try:
                incoming = self._inbound.convert(update)
            except UnreadableUpdate as exc:
                if not skip_unreadable:
                    raise
                log.warning("getUpdates: an unreadable update skipped (%s)", exc)
                self._on_unreadable(str(exc))
                continue
            if incoming is not None and incoming.update_key is not None:
                batch.setdefault(incoming.update_key, incoming)
            elif update.callback_query is not None:
                self._answer_quietly(update.callback_query.id)
        return batch

    async def _hand_over(self, batch: dict[str, Incoming], fresh: set[str]) -> None:
        assert self._handle is not None
        for key, incoming in batch.items():
            if key in fresh:
                self._expect_answer(incoming)
                await self._handle(incoming)
            elif incoming.press_id:
                self._answer_quietly(incoming.press_id)  # a redelivered press: handled before

    def _expect_answer(self, incoming: Incoming) -> None:
        """Every press must be answered, or the client spins; the core should, we make sure."""
        if incoming.press_id is None:
            return
        self._unanswered.add(incoming.press_id)
        self._tasks.spawn(self._answer_late(incoming.press_id), name="telegram-press-deadline")

    async def _answer_late(self, press_id: str) -> None:
        await asyncio.sleep(PRESS_ANSWER_SECONDS)
        if press_id in self._unanswered:
            self._unanswered.discard(press_id)
            await self._sender_ready().answer_press(press_id, "", alert=False)

    def _answer_quietly(self, press_id: str) -> None:
        sender = self._sender_ready()
        self._tasks.spawn(
            sender.answer_press(press_id, "", alert=False), name="telegram-press-answer"
        )

    # -- sending -----------------------------------------------------------------

    def _sender_ready(self) -> BotApiSender:
        if self._sender is None:
            raise TransportStartError("The Telegram transport is not started")
        return self._sender

    async def send(self, message: Outgoing) -> MessageRef:
        delivered: list[str] = []
        try:
            with translated("sendMessage"):
                return await self._sender_ready().send(message, delivered)
        except TransportError as exc:
            exc.parts_sent = tuple(delivered)  # the next attempt sends only the rest
            raise

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        with translated("editMessageText"):
            return await self._sender_ready().edit(ref, message)

    answers_by_form = False  # the ForceReply's answer is the person's next message there

    async def ask_text(self, press: Incoming, request: TextRequest) -> MessageRef | None:
        """A ForceReply prompt replying to the pressed message (the card)."""
        with translated("sendMessage"):
            return await self._sender_ready().force_reply(press, request)

    async def delete(self, ref: MessageRef) -> None:
        with translated("deleteMessage"):
            await self._sender_ready().delete(ref)

    async def probe(self) -> None:
        """`getMe`: does the Bot API answer, and take our token, again?"""
        bot = self._bot
        if bot is None:
            raise TransportStartError("The Telegram transport is not started")
        with translated("getMe"):
            await bot.get_me()

    async def download(self, incoming: Incoming, attachment: Attachment, limit: int) -> bytes:
        """A file from an update (voice note, audio), through `getFile`."""
        if self._bot is None:
            raise TransportError("Telegram is not started")
        with translated("getFile"):
            return await files.download(self._bot, attachment, limit)

    async def typing(self, chat: str) -> None:
        with translated("sendChatAction"):
            await self._sender_ready().typing(chat)

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        """Answer the callback query; a press replayed after a restart gets a message."""
        sender = self._sender_ready()
        answered = False
        if press.press_id is not None and press.press_id in self._unanswered:
            self._unanswered.discard(press.press_id)
            with translated("answerCallbackQuery"):
                answered = await sender.answer_press(press.press_id, text, alert=alert)
        if not answered and alert and text:
            await self.send(Outgoing.plain(press.chat, text, press.thread))


async def introduce(bot: Bot, where: str) -> None:
    """`getMe`, which also proves the token and the API address; one clear error if not."""
    try:
        await bot.initialize()
    except InvalidToken:
        raise TransportStartError(
            "Telegram rejected the bot token (401 Unauthorized): check [telegram] token"
        ) from None
    except NetworkError as exc:
        raise TransportStartError(
            f"Cannot reach the Telegram Bot API at {where}: {exc.message}"
        ) from None
    except TelegramError as exc:
        raise TransportStartError(f"Telegram refused getMe: {exc.message}") from None
