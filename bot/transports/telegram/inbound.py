"""Telegram updates -> `Incoming`, and what a group chat may say to the bot.

Private chats: every message. Groups: only commands, `@bot` mentions (the mention is
stripped, in a caption too) and replies to the bot's own messages; the rest of a
group's chatter is not ours. A voice note, an audio file, a photo or a document becomes
an `Attachment` (fetched later, when it is used; a caption is the text). A message the
bot cannot use (a sticker, a location, a poll) becomes `Incoming(unsupported="a
sticker")`, answered with what the bot takes; service messages (someone joined, a pin)
are no one talking to us. Button presses become `Incoming(press=...)` with the callback
query id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telegram import CallbackQuery, Chat, Message, Update

from bot.transports.telegram.render import parse_callback_data
from bot.types import Attachment, AttachmentKind, Incoming, Press

NAME = "telegram"
ALLOWED_UPDATES = ("message", "callback_query")
_ID = re.compile(rf"{NAME}:-?[0-9]{{1,20}}")


class UnreadableUpdate(ValueError):
    """An update whose shape the Bot API would never send (a webhook caller's junk)."""


@dataclass(frozen=True, slots=True)
class TelegramBotIdentity:
    id: int
    username: str

    def mention(self) -> re.Pattern[str]:
        return re.compile(rf"(?<![\w@])@{re.escape(self.username)}\b", re.IGNORECASE)


# Message contents we cannot use yet, as the answer names them. Order matters: a GIF
# also carries `document`, a venue also `location`.
UNSUPPORTED = (
    ("sticker", "a sticker"),
    ("animation", "a GIF"),
    ("video_note", "a video message"),
    ("video", "a video"),
    ("venue", "a place"),
    ("location", "a location"),
    ("contact", "a contact"),
    ("poll", "a poll"),
    ("dice", "a dice roll"),
    ("game", "a game"),
    ("story", "a story"),
    ("invoice", "an invoice"),
    ("paid_media", "paid media"),
    ("checklist", "a checklist"),
)


# The fields of a plain text message, all `quick` reads; any other field (a reply, a
# topic, a photo, a forward) goes the whole way through python-telegram-bot.
PLAIN_FIELDS = frozenset({"message_id", "date", "chat", "from", "text", "entities"})


def update_key(update_id: int) -> str:
    return f"{NAME}:{update_id}"


class Inbound:
    """Converts updates for one bot (it needs the bot's id and name for groups)."""

    def __init__(self, me: TelegramBotIdentity) -> None:
        self._me = me
        self._mention = me.mention()

    def convert(self, update: Update) -> Incoming | None:
        """The update as our `Incoming`, or None when it is not something we take.

        Raises `UnreadableUpdate` when its parts are not what the Bot API sends (only a
        webhook caller with the secret can make such an update).
        """
        try:
            incoming = self._convert(update)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise UnreadableUpdate(f"update {update.update_id}: {type(exc).__name__}") from None
        if incoming is not None and not _well_formed(incoming):
            raise UnreadableUpdate(f"update {update.update_id}: unexpected field types")
        return incoming

    def quick(self, data: Mapping[str, Any]) -> Incoming | None:
        """A private chat's plain text message read straight from its JSON, or None for any
        other update (`convert` reads those, after python-telegram-bot parsed them).

        Most updates are this, and PTB's parse was 8 % of an llm message's loop time;
        what comes out is what `convert` makes of the same update."""
        message = data.get("message")
        if data.keys() != {"update_id", "message"} or not isinstance(message, dict):
            return None
        if not PLAIN_FIELDS.issuperset(message):
            return None
        chat, user, text = message.get("chat"), message.get("from"), message.get("text")
        if not (isinstance(chat, dict) and isinstance(user, dict) and isinstance(text, str)):
            return None
        update_id, number = data.get("update_id"), message.get("message_id")
        ids = (update_id, number, chat.get("id"), user.get("id"), message.get("date"))
        if not all(type(n) is int for n in ids) or not _entities(message.get("entities", [])):
            return None
        assert isinstance(update_id, int)
        if chat.get("type") != Chat.PRIVATE or user.get("is_bot") is not False or not text:
            return None
        incoming = Incoming(
            transport=NAME,
            chat=f"{NAME}:{chat['id']}",
            user=f"{NAME}:{user['id']}",
            text=text,
            message_id=str(number),
            private=True,
            update_key=update_key(update_id),
        )
        return incoming if _well_formed(incoming) else None

    def _convert(self, update: Update) -> Incoming | None:
        if update.callback_query is not None:
            return self._press(update.update_id, update.callback_query)
        if update.message is not None:
            return self._message(update.update_id, update.message)
        return None

    def _message(self, update_id: int, message: Message) -> Incoming | None:
        user = message.from_user
        if user is None or user.is_bot:
            return None
        attachments = _recordings(message) or _files(message)
        unsupported = "" if message.text or attachments else _unsupported_kind(message)
        if not message.text and not unsupported and not attachments:
            return None  # a service message: someone joined, a pin, a new title
        private = message.chat.type == Chat.PRIVATE
        said = message.text or message.caption or ""
        text = said if private else self._group_text(message)
        if text is None:
            return None
        return Incoming(
            transport=NAME,
            chat=f"{NAME}:{message.chat.id}",
            user=f"{NAME}:{user.id}",
            text=text,
            thread=_thread(message),
            message_id=str(message.message_id),
            private=private,
            update_key=update_key(update_id),
            unsupported=unsupported,
            attachments=attachments,
        )

    def _group_text(self, message: Message) -> str | None:
        """What a group message says to us, or None when it is not for us."""
        text = message.text or message.caption or ""
        if text.startswith("/"):
            command = text.split(None, 1)[0]
            addressee = command.partition("@")[2]
            return text if not addressee or addressee.lower() == self._me.username.lower() else None
        if self._mention.search(text):
            return " ".join(self._mention.sub(" ", text).split())
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None:
            return text if replied.from_user.id == self._me.id else None
        return None

    def _press(self, update_id: int, query: CallbackQuery) -> Incoming | None:
        message = query.message
        if message is None or not query.data:
            return None  # an inline-mode message or a game: not ours
        action_id, value = parse_callback_data(query.data)
        return Incoming(
            transport=NAME,
            chat=f"{NAME}:{message.chat.id}",
            user=f"{NAME}:{query.from_user.id}",
            message_id=str(message.message_id),
            press=Press(action_id, value),
            private=message.chat.type == Chat.PRIVATE,
            update_key=update_key(update_id),
            press_id=query.id,
        )


def _recordings(message: Message) -> tuple[Attachment, ...]:
    """A voice note or an audio file, as an attachment to fetch when it is used."""
    if message.voice is not None:
        voice = message.voice
        name = f"voice-{message.message_id}.ogg"
        mime = voice.mime_type or "audio/ogg"
        return (Attachment(AttachmentKind.VOICE, voice.file_id, name, voice.file_size, mime),)
    if message.audio is not None:
        audio = message.audio
        name = audio.file_name or "audio.mp3"
        mime = audio.mime_type or ""
        return (Attachment(AttachmentKind.AUDIO, audio.file_id, name, audio.file_size, mime),)
    return ()


def _files(message: Message) -> tuple[Attachment, ...]:
    """A photo (its largest size) or a document, as an attachment to fetch when used."""
    number = message.message_id
    if message.photo:
        photo = max(message.photo, key=lambda size: size.width * size.height)
        name = f"photo-{number}.jpg"
        return (
            Attachment(AttachmentKind.PHOTO, photo.file_id, name, photo.file_size, "image/jpeg"),
        )
    if message.document is not None and message.animation is None:
        doc = message.document
        name = doc.file_name or f"file-{number}"
        mime = doc.mime_type or ""
        return (Attachment(AttachmentKind.DOCUMENT, doc.file_id, name, doc.file_size, mime),)
    return ()


def _unsupported_kind(message: Message) -> str:
    """What a message without text holds, as the answer names it; empty for none."""
    for field, kind in UNSUPPORTED:
        if getattr(message, field, None):
            return kind
    return ""


def _entities(entities: object) -> bool:
    """Entities as the Bot API sends them (PTB would refuse other shapes)."""
    return isinstance(entities, list) and all(
        isinstance(e, dict)
        and isinstance(e.get("type"), str)
        and type(e.get("offset")) is int
        and type(e.get("length")) is int
        for e in entities
    )


def _well_formed(incoming: Incoming) -> bool:
    """Ids are numbers and the text is text, as the Bot API guarantees."""
    return (
        isinstance(incoming.text, str)
        and _ID.fullmatch(incoming.chat) is not None
        and _ID.fullmatch(incoming.user) is not None
        and (incoming.message_id is None or incoming.message_id.lstrip("-").isdigit())
        and (incoming.thread is None or incoming.thread.isdigit())
    )


def _thread(message: Message) -> str | None:
    """Forum topics are threads; the General topic and ordinary chats have none."""
    return str(message.message_thread_id) if message.is_topic_message else None
