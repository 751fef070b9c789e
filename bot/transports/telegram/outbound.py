"""Sending, editing and deleting messages through the Bot API, within Telegram's limits.

Every message-producing call waits for the pacer, is retried on 429 / network errors,
falls back to plain text when Telegram rejects the HTML, and treats a chat that
blocked the bot as gone (logged, skipped, never raised into the core). A new message
is sent again only after a failure that proves it was not sent (no connection, a 5xx
answered, a 429); a flood wait longer than a send may take is left to the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import PurePath
from typing import TypeVar

from telegram import Bot, ForceReply, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.errors import DeliveryUncertain, Refused, RetryLater, TransportDown, TransportError
from bot.text import plain_text
from bot.transports.telegram import render
from bot.transports.telegram.limits import (
    MAX_RETRY_AFTER_SECONDS,
    Pacer,
    retry_after_seconds,
    retrying,
)
from bot.transports.telegram.request import NotSent, ServerFailed
from bot.types import Incoming, MessageRef, Outgoing, TextRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
DOCUMENT_AFTER_PAGES = 3  # longer output goes as a file: nobody scrolls through 4+ messages
DOCUMENT_NAME = "output.txt"
GONE = ""  # the message id of a message that could not be delivered (chat blocked us)
NEW_MESSAGE_CALLS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})  # not idempotent
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
PHOTO_BYTES = 10 * 1024 * 1024  # the Bot API's limit for photos; larger ones go as documents
UPLOAD_BYTES = 50 * 1024 * 1024  # the Bot API's limit for any file a bot uploads
# A new message waits out a 429 this long at most, well within the outbox's time for a
# send (`bot.delivery.outbox.SEND_TIMEOUT_SECONDS`): cut off while waiting, it would look uncertain.
NEW_MESSAGE_PATIENCE_SECONDS = 10.0


def telegram_chat_id(chat: str) -> int:
    """`telegram:-100123` -> -100123."""
    try:
        return int(chat.partition(":")[2])
    except ValueError:
        raise TransportError(f"Not a Telegram chat id: {chat!r}") from None


def _thread_id(thread: str | None) -> int | None:
    return int(thread) if thread else None


def _says(exc: BadRequest, *needles: str) -> bool:
    text = exc.message.lower()
    return any(needle in text for needle in needles)


class BotApiSender:
    def __init__(self, bot: Bot, pacer: Pacer) -> None:
        self._bot = bot
        self._pacer = pacer

    async def send(self, message: Outgoing, delivered: list[str] | None = None) -> MessageRef:
        """Send the message, as several when it is long. `delivered` gets each part's id as
        it goes out; the parts in `message.sent_parts` went out before and are skipped."""
        if message.files:
            return await self._send_files(message)
        target = telegram_chat_id(message.chat)
        pages = render.pages(message.text)
        markup = render.keyboard(message.buttons)
        if len(pages) > DOCUMENT_AFTER_PAGES:
            return await self._send_document(message, markup)
        ids: list[str] = [] if delivered is None else delivered
        for number, page in enumerate(pages, 1):
            if number <= len(message.sent_parts):
                ids.append(message.sent_parts[number - 1])
                continue
            last = number == len(pages)
            sent = await self._send_page(target, page, message.thread, markup if last else None)
            if sent == GONE:
                return MessageRef(message.chat, GONE, message.thread)
            ids.append(sent)
        return MessageRef(message.chat, ids[0], message.thread, tuple(ids[1:]))

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        if ref.message_id == GONE:
            return ref
        target = telegram_chat_id(ref.chat)
        pages = render.pages(message.text)
        markup = render.keyboard(message.buttons)
        old = [ref.message_id, *ref.extra]
        if len(pages) > DOCUMENT_AFTER_PAGES:
            await self.delete(ref)
            return await self._send_document(message, markup)
        ids: list[str] = []
        for number, page in enumerate(pages, 1):
            keys = markup if number == len(pages) else None
            if number <= len(old):
                ids.append(await self._edit_page(target, old[number - 1], page, ref.thread, keys))
            else:
                ids.append(await self._send_page(target, page, ref.thread, keys))
        for leftover in old[len(pages) :]:
            await self._delete_one(target, leftover)
        return MessageRef(ref.chat, ids[0], ref.thread, tuple(ids[1:]))

    async def delete(self, ref: MessageRef) -> None:
        if ref.message_id == GONE:
            return
        target = telegram_chat_id(ref.chat)
        for message_id in (ref.message_id, *ref.extra):
            await self._delete_one(target, message_id)

    async def typing(self, chat: str) -> None:
        target = telegram_chat_id(chat)
        await self._call(
            lambda: self._bot.send_chat_action(target, ChatAction.TYPING), what="typing"
        )

    async def force_reply(self, press: Incoming, request: TextRequest) -> MessageRef:
        """Ask with a ForceReply, as a reply to the pressed message: the asked person's app
        opens a reply to it (`selective`: only theirs, as the prompt mentions them)."""
        target = telegram_chat_id(press.chat)
        html, _ = render.pages(request.prompt)[0]
        replied = int(press.message_id) if press.message_id else None
        markup = ForceReply(selective=True, input_field_placeholder=request.label[:64])

        async def send() -> int:
            await self._pacer.wait(str(target), new_message=True)
            sent = await self._bot.send_message(
                target,
                html,
                parse_mode=ParseMode.HTML,
                message_thread_id=_thread_id(press.thread),
                reply_markup=markup,
                reply_parameters=ReplyParameters(replied, allow_sending_without_reply=True)
                if replied
                else None,
            )
            return sent.message_id

        sent = await self._call(send, what="sendMessage")
        return MessageRef(press.chat, GONE if sent is None else str(sent), press.thread)

    async def answer_press(self, press_id: str, text: str, *, alert: bool) -> bool:
        """Answer a callback query; False when Telegram no longer takes the answer."""
        try:
            await retrying(
                lambda: self._bot.answer_callback_query(
                    press_id, text=text[: render.CAPTION_CHARS] or None, show_alert=alert
                ),
                what="answerCallbackQuery",
            )
        except BadRequest as exc:  # "query is too old": the press came before a restart
            log.info("could not answer a button press: %s", exc.message)
            return False
        return True

    async def _send_page(
        self,
        target: int,
        page: render.Page,
        thread: str | None,
        markup: InlineKeyboardMarkup | None,
    ) -> str:
        html, text = page

        def send(plain: bool) -> Awaitable[int]:
            return self._send_text(
                target, plain_text(text) if plain else html, plain, thread, markup
            )

        sent = await self._with_plain_fallback(send, what="sendMessage")
        return GONE if sent is None else str(sent)

    async def _send_text(
        self,
        target: int,
        body: str,
        plain: bool,
        thread: str | None,
        markup: InlineKeyboardMarkup | None,
    ) -> int:
        await self._pacer.wait(str(target), new_message=True)
        if markup is None:  # most answers: only the new message's id is wanted back
            return await self._send_bare(target, body, plain, thread)
        sent = await self._bot.send_message(
            target,
            body,
            parse_mode=None if plain else ParseMode.HTML,
            message_thread_id=_thread_id(thread),
            reply_markup=markup,
        )
        return sent.message_id

    async def _send_bare(self, target: int, body: str, plain: bool, thread: str | None) -> int:
        """`sendMessage` as `Bot.send_message` makes it, without its parse of the whole
        returned `Message` (4 % of an llm message's loop time) for one id.
        Errors are the same: they come from the request underneath."""
        params: dict[str, object] = {"chat_id": target, "text": body}
        if not plain:
            params["parse_mode"] = ParseMode.HTML
        if (thread_id := _thread_id(thread)) is not None:
            params["message_thread_id"] = thread_id
        sent = await self._bot._post("sendMessage", params)  # the call send_message makes
        return int(sent["message_id"])

    async def _edit_page(
        self,
        target: int,
        message_id: str,
        page: render.Page,
        thread: str | None,
        markup: InlineKeyboardMarkup | None,
    ) -> str:
        html, text = page

        async def edit(plain: bool) -> int:
            await self._pacer.wait(str(target), new_message=False)
            await self._bot.edit_message_text(
                plain_text(text) if plain else html,
                chat_id=target,
                message_id=int(message_id),
                parse_mode=None if plain else ParseMode.HTML,
                reply_markup=markup,
            )
            return int(message_id)

        try:
            await self._with_plain_fallback(edit, what="editMessageText")
        except BadRequest as exc:
            if _says(exc, "message is not modified"):
                return message_id
            if not _says(exc, "message to edit not found", "message can't be edited"):
                raise
            return await self._send_page(target, page, thread, markup)  # gone: post it anew
        return message_id

    async def _send_document(
        self, message: Outgoing, markup: InlineKeyboardMarkup | None
    ) -> MessageRef:
        target = telegram_chat_id(message.chat)
        body = plain_text(message.text).encode()

        async def send() -> int:
            await self._pacer.wait(str(target), new_message=True)
            sent = await self._bot.send_document(
                target,
                body,
                filename=DOCUMENT_NAME,
                caption=render.caption(message.text),
                message_thread_id=_thread_id(message.thread),
                reply_markup=markup,
            )
            return sent.message_id

        sent = await self._call(send, what="sendDocument")
        return MessageRef(message.chat, GONE if sent is None else str(sent), message.thread)

    async def _send_files(self, message: Outgoing) -> MessageRef:
        """Each file as a photo (an image small enough) or a document; the text its caption."""
        target = telegram_chat_id(message.chat)
        caption = plain_text(message.text)[: render.FILE_CAPTION_CHARS] or None
        ids: list[str] = []
        for path in message.files:
            body, kind = await asyncio.to_thread(_read_outgoing, path)
            upload = partial(
                self._upload,
                target,
                body,
                kind=kind,
                name=PurePath(path).name,
                caption=caption,
                thread=message.thread,
            )
            sent = await self._call(upload, what=kind)
            if sent is None:
                return MessageRef(message.chat, GONE, message.thread)
            ids.append(str(sent))
        return MessageRef(message.chat, ids[0], message.thread, tuple(ids[1:]))

    async def _upload(
        self,
        target: int,
        body: bytes,
        *,
        kind: str,
        name: str,
        caption: str | None,
        thread: str | None,
    ) -> int:
        await self._pacer.wait(str(target), new_message=True)
        where = _thread_id(thread)
        if kind == "sendPhoto":
            sent = await self._bot.send_photo(
                target, body, caption=caption, message_thread_id=where
            )
        else:
            sent = await self._bot.send_document(
                target, body, filename=name, caption=caption, message_thread_id=where
            )
        return sent.message_id

    async def _with_plain_fallback(
        self, call: Callable[[bool], Awaitable[T]], *, what: str
    ) -> T | None:
        """HTML first; when Telegram cannot parse the entities, the same text plain."""
        try:
            return await self._call(lambda: call(False), what=what)
        except BadRequest as exc:
            if not _says(exc, "can't parse entities", "can't find end"):
                raise
            log.info("%s: Telegram rejected the HTML (%s); sending plain text", what, exc.message)
        return await self._call(lambda: call(True), what=what)

    async def _delete_one(self, target: int, message_id: str) -> None:
        try:
            await self._call(
                lambda: self._bot.delete_message(target, int(message_id)), what="deleteMessage"
            )
        except BadRequest as exc:  # already deleted, or too old to delete: nothing to do
            log.info("could not delete message %s: %s", message_id, exc.message)

    async def _call(self, call: Callable[[], Awaitable[T]], *, what: str) -> T | None:
        """Retried call; a chat that blocked the bot (403) is logged and yields None."""
        new = what in NEW_MESSAGE_CALLS
        patience = NEW_MESSAGE_PATIENCE_SECONDS if new else MAX_RETRY_AFTER_SECONDS
        try:
            return await retrying(call, what=what, resend=not new, patience=patience)
        except Forbidden as exc:
            log.warning("%s skipped: %s", what, exc.message)
            return None


def _read_outgoing(path: str) -> tuple[bytes, str]:
    """A file to send and how (`sendPhoto` or `sendDocument`). Blocking: in a thread."""
    size = os.stat(path).st_size
    if size > UPLOAD_BYTES:
        raise Refused(
            f"Telegram takes files up to 50 MB from bots; {PurePath(path).name} has {size:,} bytes"
        )
    with open(path, "rb") as file:
        body = file.read()
    photo = PurePath(path).suffix.lower() in PHOTO_SUFFIXES and size <= PHOTO_BYTES
    return body, "sendPhoto" if photo else "sendDocument"


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Bot API errors leave the transport as our `TransportError`, never as PTB's.

    Unreachable or a refused token: `TransportDown`. A new message whose answer was lost
    (a timeout, a dropped connection, a proxy's 502/504 page): `DeliveryUncertain` — it
    may be in the chat. A 5xx the Bot API answered, or a long flood wait: not sent. A 400
    (chat not found, a text refused even plain): `Refused`, the same message never goes.
    """
    try:
        yield
    except (NotSent, InvalidToken) as exc:
        raise TransportDown(f"Telegram {what}: {exc.message}") from exc
    except ServerFailed as exc:
        raise TransportError(f"Telegram {what}: {exc.message}") from exc
    except RetryAfter as exc:
        seconds = retry_after_seconds(exc)
        raise RetryLater(
            f"Telegram {what}: flood limit, retry in {seconds:g} s", seconds=seconds
        ) from exc
    except BadRequest as exc:  # PTB counts it a NetworkError, but the Bot API answered: no
        raise Refused(f"Telegram refused {what}: {exc.message}") from exc
    except NetworkError as exc:
        if what in NEW_MESSAGE_CALLS:
            raise DeliveryUncertain(f"Telegram {what}: no answer ({exc.message})") from exc
        raise TransportError(f"Telegram {what} failed: {exc.message}") from exc
    except TelegramError as exc:
        raise TransportError(f"Telegram refused {what}: {exc.message}") from exc
