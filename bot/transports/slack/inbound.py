"""Slack payloads (events, slash commands, button actions) -> our `Incoming`.

Pure functions over the JSON Slack sends; nothing here talks to the network. Ids:
users `slack:<user>`, chats `slack:<channel>`, threads `slack:<channel>/<thread_ts>`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bot.transports.slack.render import press_of
from bot.types import Attachment, AttachmentKind, Incoming

TRANSPORT = "slack"
PRIVATE = "@"  # in a thread id, where the ts would be: replies shown to this user alone
# Message subtypes that are still a person writing; the rest are edits, joins, bots…
PERSON_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([^|>]+)(?:\|([^>]*))?>")

Payload = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SlackBotIdentity:
    """Who the bot is in this workspace (from `auth.test`)."""

    user_id: str
    bot_id: str
    team_id: str
    name: str
    enterprise_id: str = ""  # the Enterprise Grid organisation, if the workspace is in one


def chat_for_channel(channel: str) -> str:
    return f"{TRANSPORT}:{channel}"


def thread_id(channel: str, ts: str | None) -> str | None:
    return f"{TRANSPORT}:{channel}/{ts}" if ts else None


def opens_thread(incoming: Incoming) -> bool:
    """A message outside any thread: the thread of its answers starts with it."""
    ts = incoming.message_id
    return ts is not None and incoming.thread == thread_id(channel_of(incoming.chat), ts)


def channel_of(chat: str) -> str:
    return chat.removeprefix(f"{TRANSPORT}:")


def thread_ts_of(thread: str | None, channel: str) -> str | None:
    """The `thread_ts` of one of our thread ids, if it belongs to this channel."""
    if not thread:
        return None
    where, _, ts = channel_of(thread).partition("/")
    return ts if where == channel and ts and not ts.startswith(PRIVATE) else None


def private_thread(channel: str, user: str) -> str:
    """A thread id whose replies only `user` sees (a command with private arguments)."""
    return f"{TRANSPORT}:{channel}/{PRIVATE}{user}"


def private_reader(thread: str | None, channel: str) -> str | None:
    """The one user a `private_thread` in this channel shows its replies to, else None."""
    if not thread:
        return None
    where, _, ts = channel_of(thread).partition("/")
    return ts.removeprefix(PRIVATE) if where == channel and ts.startswith(PRIVATE) else None


def clean_text(text: str, bot_user: str) -> str:
    """Slack's wire format -> what the person typed, without the mention of the bot."""
    text = _MENTION.sub(lambda m: "" if m.group(1) == bot_user else f"slack:{m.group(1)}", text)
    text = _LINK.sub(lambda m: _link_text(m.group(1), m.group(2)), text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: m.group(2) or f"@{m.group(1).split('^')[0]}", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()


def from_event(body: Payload, me: SlackBotIdentity) -> Incoming | None:
    """A mention in a channel or a direct message; None for everything else."""
    event = body.get("event") or {}
    user = event.get("user")
    if not user or user == me.user_id or event.get("bot_id"):
        return None  # our own messages and other bots'
    if event.get("subtype") and event["subtype"] not in PERSON_SUBTYPES:
        return None
    channel = str(event.get("channel", ""))
    ts = event.get("ts")
    if event.get("type") == "app_mention" and not channel.startswith("D"):
        thread, private = thread_id(channel, event.get("thread_ts") or ts), False
    elif event.get("type") == "message" and event.get("channel_type") == "im":
        thread, private = thread_id(channel, event.get("thread_ts")), True
    else:
        return None
    text = clean_text(str(event.get("text") or ""), me.user_id)
    event_id = body.get("event_id")
    files = [f for f in event.get("files") or [] if isinstance(f, Mapping)]
    attachments = tuple(a for a in (_attachment(f) for f in files) if a is not None)
    return Incoming(
        transport=TRANSPORT,
        chat=chat_for_channel(channel),
        user=f"{TRANSPORT}:{user}",
        text=text,
        thread=thread,
        message_id=ts,
        private=private,
        update_key=f"{TRANSPORT}:{event_id}" if event_id else None,
        unsupported=_file_kind(files[0]) if files and not attachments else "",
        attachments=attachments,
    )


def _attachment(file: Mapping[str, Any]) -> Attachment | None:
    """An audio clip, an image or another file (not a video), to fetch when it is used."""
    mimetype = str(file.get("mimetype") or "")
    if mimetype.startswith("video/") or not file.get("id"):
        return None
    kind = AttachmentKind.DOCUMENT
    if mimetype.startswith("audio/"):
        kind = AttachmentKind.AUDIO
    elif mimetype.startswith("image/"):
        kind = AttachmentKind.PHOTO
    size = file.get("size")
    return Attachment(
        kind,
        str(file["id"]),
        str(file.get("name") or "file"),
        size if isinstance(size, int) else None,
        mimetype,
    )


def _file_kind(file: Mapping[str, Any]) -> str:
    """A shared file the bot cannot read, as the answer names it."""
    mimetype = str(file.get("mimetype") or "")
    if mimetype.startswith("image/"):
        return "an image"
    if mimetype.startswith("video/"):
        return "a video"
    return "a file"


def from_command(body: Payload, me: SlackBotIdentity, commands: Collection[str]) -> Incoming:
    """`/deck ask ops uptime` -> `/ask ops uptime`; `/deck` alone -> `/help`.

    A first word that is not a command leaves the text as it is, for the chat's agent.
    """
    text = clean_text(str(body.get("text") or ""), me.user_id)
    word, _, rest = text.partition(" ")
    if not text:
        text = "/help"
    elif word.lower() in commands:
        text = f"/{word.lower()} {rest.strip()}".rstrip()
    channel = str(body.get("channel_id", ""))
    return Incoming(
        transport=TRANSPORT,
        chat=chat_for_channel(channel),
        user=f"{TRANSPORT}:{body.get('user_id', '')}",
        text=text,
        private=channel.startswith("D") or body.get("channel_name") == "directmessage",
        update_key=f"{TRANSPORT}:command:{body['trigger_id']}" if body.get("trigger_id") else None,
        slash_command=True,
    )


def from_action(body: Payload) -> Incoming | None:
    """A Block Kit button press (`block_actions`)."""
    actions = body.get("actions") or []
    user = (body.get("user") or {}).get("id")
    if body.get("type") != "block_actions" or not actions or not user:
        return None
    action = actions[0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    trigger = body.get("trigger_id")
    return Incoming(
        transport=TRANSPORT,
        chat=chat_for_channel(channel),
        user=f"{TRANSPORT}:{user}",
        thread=thread_id(channel, message.get("thread_ts") or container.get("thread_ts")),
        message_id=message.get("ts") or container.get("message_ts"),
        press=press_of(str(action.get("action_id", "")), str(action.get("value", ""))),
        private=channel.startswith("D"),
        update_key=f"{TRANSPORT}:action:{trigger}" if trigger else None,
        press_id=str(trigger) if trigger else None,  # opens a form (a modal) for this press
    )


def _link_text(target: str, label: str | None) -> str:
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    return target
