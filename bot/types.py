"""The transport-neutral core: what comes in, what goes out, and what a transport is.

Chat and user ids carry their transport as prefix (`telegram:123`, `slack:C0123`,
`console:local`), so the core never has to ask where something came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.text import Rich, rich
from roster.agent import Received

OnOutage = Callable[[str], None]  # (reason): a transport noticed its platform is gone

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from datetime import datetime


class ButtonStyle(StrEnum):
    DEFAULT = "default"
    PRIMARY = "primary"
    DANGER = "danger"


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    action_id: str
    value: str
    style: ButtonStyle = ButtonStyle.DEFAULT


@dataclass(frozen=True, slots=True)
class Press:
    """A button press: which button, with which value."""

    action_id: str
    value: str


class AttachmentKind(StrEnum):
    VOICE = "voice"  # a voice note
    AUDIO = "audio"  # an audio file
    PHOTO = "photo"  # an image (Telegram's compressed photo, an image shared in Slack)
    DOCUMENT = "document"  # any other file


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message, not fetched yet: the transport that made it downloads
    it (`Downloads`) through its platform's API when the file is used."""

    kind: AttachmentKind
    file_id: str  # the platform's id (Telegram's file_id, Slack's file id)
    name: str = ""
    size: int | None = None  # bytes, as the platform announced them
    mime: str = ""

    def to_json(self) -> list[object]:
        return [self.kind.value, self.file_id, self.name, self.size, self.mime]

    @classmethod
    def from_json(cls, data: list[Any]) -> Attachment:
        kind, file_id, name, size, mime = data
        return cls(AttachmentKind(kind), str(file_id), str(name), size, str(mime))


@dataclass(frozen=True, slots=True)
class Incoming:
    transport: str
    chat: str
    user: str
    text: str = ""
    thread: str | None = None
    message_id: str | None = None
    press: Press | None = None
    private: bool = True
    # The platform's delivery id (`telegram:<update_id>`), stored in the inbox.
    update_key: str | None = None
    # The platform's handle on a press: Telegram's callback query id (answered by the
    # transport), Slack's trigger id (opens a form for the presser).
    press_id: str | None = None
    # Read back from the inbox: handled again after a restart, its replies may be out already.
    replayed: bool = False
    # Sent as a slash command (Slack's `/deck …`), whatever its words: never a denial reason.
    slash_command: bool = False
    # Read back from the inbox, which kept a private command without its arguments.
    redacted: bool = False
    # Why the platform says this person is not a full member of the organisation the bot
    # serves (another Slack workspace, a guest); empty for a member. Such a person gets
    # only the role `[[users]]` lists, never one from writing in a chat.
    outsider: str = ""
    # What the message was when the bot cannot use it ("a sticker", "a location"): it is
    # answered with what the bot takes, never dropped in silence.
    unsupported: str = ""
    attachments: tuple[Attachment, ...] = ()
    # The attachments once fetched and saved for the agents (set by the dispatcher, on
    # the copy it hands on; never read back from the inbox).
    received: tuple[Received, ...] = ()
    # The answer to a form the bot opened (`TextRequest.form`, e.g. Slack's modal): `text`
    # is what was typed into it, alone, and it is never a message for an agent.
    form: str = ""

    def to_json(self) -> dict[str, object]:
        """Plain JSON for the inbox, so an update can be handled again after a restart."""
        data: dict[str, object] = {
            "transport": self.transport,
            "chat": self.chat,
            "user": self.user,
            "text": self.text,
            "thread": self.thread,
            "message_id": self.message_id,
            "private": self.private,
            "update_key": self.update_key,
        }
        if self.press is not None:
            data["press"] = [self.press.action_id, self.press.value]
        if self.slash_command:
            data["slash_command"] = True
        if self.outsider:
            data["outsider"] = self.outsider
        if self.unsupported:
            data["unsupported"] = self.unsupported
        if self.attachments:
            data["attachments"] = [a.to_json() for a in self.attachments]
        if self.form:
            data["form"] = self.form
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Incoming:
        press = data.get("press")
        return cls(
            transport=data["transport"],
            chat=data["chat"],
            user=data["user"],
            text=data.get("text", ""),
            thread=data.get("thread"),
            message_id=data.get("message_id"),
            private=bool(data.get("private", True)),
            update_key=data.get("update_key"),
            press=Press(press[0], press[1]) if press else None,
            replayed=True,
            slash_command=bool(data.get("slash_command", False)),
            redacted=bool(data.get("redacted", False)),
            outsider=str(data.get("outsider") or ""),
            unsupported=str(data.get("unsupported") or ""),
            attachments=tuple(Attachment.from_json(a) for a in data.get("attachments") or ()),
            form=str(data.get("form") or ""),
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat: str
    text: Rich
    thread: str | None = None
    buttons: tuple[Button, ...] = ()
    # The idempotency key the outbox gives it (or a caller chooses: `run:<id>`); a transport
    # that can look messages up (Slack's metadata) stores it with the message.
    key: str | None = None
    # The ids of the parts an earlier attempt delivered (a long text split in several
    # messages, cut part-way): the transport sends only the parts after them.
    sent_parts: tuple[str, ...] = ()
    # Files an agent sends back (paths the bot collected from the run's outbox folder),
    # each shown as a document or photo; the text is their caption.
    files: tuple[str, ...] = ()

    @classmethod
    def plain(cls, chat: str, text: str, thread: str | None = None) -> Outgoing:
        return cls(chat=chat, text=rich(text), thread=thread)


@dataclass(frozen=True, slots=True)
class Queued:
    """A send that did not go out now: the outbox keeps the message and delivers it later.

    `reason` says why; `cause` is the platform's error where a send was tried.
    """

    reason: str
    cause: Exception | None = None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a sent message lives, to edit it later. `message_id` is the transport's."""

    chat: str
    message_id: str
    thread: str | None = None
    extra: tuple[str, ...] = field(default=())  # further ids when a long text was split


Sent = MessageRef | Queued  # what a durable send came to


class Sender(Protocol):
    """What sends a neutral message the durable way (the postman, the outbox)."""

    async def send(self, message: Outgoing, *, retry: bool = True) -> Sent: ...


# More routes on a transport's own web listener (an aiohttp application): the webhook
# triggers (`bot.triggers`) on Telegram's webhook listener.
Routes = Callable[[Any], None]


class Transport(Protocol):
    """A chat platform adapter. It converts platform updates into `Incoming` and renders
    `Outgoing`; nothing platform-specific crosses into the core.

    Optional abilities are the small protocols below (`Probing`, `LooksUp`).
    """

    name: str
    durable: bool  # False: nothing is kept for later (a terminal); sent at once, no outbox
    has_typing: bool  # the platform shows "typing…" of its own

    async def start(
        self,
        handle: Callable[[Incoming], Awaitable[None]],
        *,
        on_outage: OnOutage,
        postman: Sender,
        routes: Routes | None = None,
    ) -> None:
        """Take updates to `handle`; call `on_outage(reason)` when the platform is lost.

        What the deck gives a transport comes here, not to its constructor: the deck's
        direct sender is built from the transports (`bot.graph`), and the deck's way out
        leads back to them. `postman` sends what a transport posts of its own accord
        (Slack's echo of a slash command); `routes`, where given, go on its web listener.
        """
        ...

    async def stop(self) -> None: ...

    async def send(self, message: Outgoing) -> MessageRef: ...

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef: ...

    async def typing(self, chat: str) -> None: ...

    async def delete(self, ref: MessageRef) -> None: ...

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        """Acknowledge a button press; `alert` when it was refused (a popup where possible)."""
        ...


@dataclass(frozen=True, slots=True)
class TextRequest:
    """Ask the person who pressed a button for one line of text (a denial's reason).

    The answer comes back as an `Incoming` whose `form` is this `form`; giving up (closing
    the form) comes back as a press of `cancel`.
    """

    form: str
    title: str  # a form's title (Slack: at most 24 characters)
    prompt: Rich  # what the person reads
    label: str  # the input's label
    cancel: Button


@runtime_checkable
class AsksText(Protocol):
    """A transport that can ask for text in its own way: Telegram a ForceReply on the
    pressed message, Slack a modal (opened with the press's trigger)."""

    answers_by_form: bool  # True: only the form's answer counts (not the next message)

    async def ask_text(self, press: Incoming, request: TextRequest) -> MessageRef | None:
        """Ask; the prompt message, if there is one to edit later."""
        ...


@runtime_checkable
class Streams(Protocol):
    """A transport that prints a model's streamed answer as it comes (the console): each
    piece is written after the last one, nothing is printed twice; the others show a
    streamed answer as edits of one message at their edit pace."""

    def stream_piece(self, chat: str, piece: str) -> None: ...

    def end_stream(self, chat: str) -> None:
        """The answer is complete: end its line (what comes next starts on a new one)."""
        ...


@runtime_checkable
class Probing(Protocol):
    """A transport that can ask its platform whether it answers (and takes our token)."""

    async def probe(self) -> None: ...


@runtime_checkable
class LooksUp(Protocol):
    """A transport whose platform can say whether a message with a given key arrived."""

    async def find_sent(self, message: Outgoing, since: datetime) -> MessageRef | None: ...


@runtime_checkable
class Downloads(Protocol):
    """A transport that fetches the files people send, through its platform's API."""

    async def download(self, incoming: Incoming, attachment: Attachment, limit: int) -> bytes:
        """The file's bytes; `FileTooLarge` above `limit` bytes, `TransportError` when the
        platform will not give it (or it is not this chat's)."""
        ...
