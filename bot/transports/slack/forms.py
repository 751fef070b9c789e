"""Slack modals for `TextRequest`s (a denial's reason): the view we open, and its answers.

`views.open` takes the trigger of the button press (valid for 3 seconds, once). The view
carries in `private_metadata` what its answer needs: the form's id, the chat and thread
of the press, and the Cancel button to press when the person closes it. Slack sends that
back unchanged with `view_submission` (the text typed, alone, becomes `Incoming.text`
with `form` set) or `view_closed` (a press of the Cancel button). Only Slack, signing with
our secret, can send either; who sent it is the payload's `user`, checked like any
other person's by the dispatcher (and its team by `members.outsider_in_payload`).
"""

from __future__ import annotations

import json
from typing import Any

from bot.transports.slack.inbound import TRANSPORT, Payload, chat_for_channel
from bot.transports.slack.render import render
from bot.types import Incoming, Press, TextRequest

CALLBACK = "agentdeck-form"
ANSWER_BLOCK = "answer"
ANSWER_ACTION = "text"
ANSWER_CHARS = 500
TITLE_CHARS = 24  # Slack's limit for a modal's title
NOT_A_COMMAND = "A reason is text, not a command: type commands in the chat."


def modal(request: TextRequest, press: Incoming) -> dict[str, Any]:
    """The view `views.open` shows for `request`, asked by the press `press`."""
    metadata = {
        "form": request.form,
        "chat": press.chat,
        "thread": press.thread,
        "cancel": [request.cancel.action_id, request.cancel.value],
    }
    return {
        "type": "modal",
        "callback_id": CALLBACK,
        "notify_on_close": True,  # closing it is Cancel: `view_closed`
        "private_metadata": json.dumps(metadata),
        "title": _plain(request.title[:TITLE_CHARS]),
        "submit": _plain("Send"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": render(request.prompt)}},
            {
                "type": "input",
                "block_id": ANSWER_BLOCK,
                "label": _plain(request.label[:2000]),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ANSWER_ACTION,
                    "multiline": True,
                    "max_length": ANSWER_CHARS,
                },
            },
        ],
    }


def answer_of(body: Payload) -> Incoming | None:
    """A `view_submission` of our form: the text alone, for the form; None if malformed."""
    found = _metadata(body)
    if found is None:
        return None
    metadata, user, view = found
    values = ((view.get("state") or {}).get("values") or {}).get(ANSWER_BLOCK) or {}
    text = (values.get(ANSWER_ACTION) or {}).get("value") or ""
    if not isinstance(text, str):
        return None
    return Incoming(
        transport=TRANSPORT,
        chat=metadata["chat"],
        user=user,
        text=text.strip()[:ANSWER_CHARS],
        thread=metadata["thread"],
        private=False,
        update_key=_key("view", body, view, user),
        form=metadata["form"],
    )


def closed_of(body: Payload) -> Incoming | None:
    """A `view_closed` of our form: a press of the form's Cancel button."""
    found = _metadata(body)
    if found is None:
        return None
    metadata, user, view = found
    action, value = metadata["cancel"]
    return Incoming(
        transport=TRANSPORT,
        chat=metadata["chat"],
        user=user,
        thread=metadata["thread"],
        press=Press(action, value),
        private=False,
        update_key=_key("view_closed", body, view, user),
    )


def _metadata(body: Payload) -> tuple[dict[str, Any], str, dict[str, Any]] | None:
    """(our metadata, the user id, the view) of a form payload; None when it is not ours."""
    view = body.get("view")
    user = (body.get("user") or {}).get("id")
    if not isinstance(view, dict) or view.get("callback_id") != CALLBACK or not user:
        return None
    try:
        metadata = json.loads(str(view.get("private_metadata") or ""))
    except ValueError:
        return None
    if not _well_formed(metadata):
        return None
    return metadata, f"{TRANSPORT}:{user}", view


def _key(kind: str, body: Payload, view: dict[str, Any], user: str) -> str:
    """The inbox key: the submission's own trigger (each delivery of it has the same one)."""
    trigger = body.get("trigger_id")
    return f"{TRANSPORT}:{kind}:{trigger or str(view.get('id')) + '/' + user}"


def _well_formed(metadata: Any) -> bool:
    if not isinstance(metadata, dict):
        return False
    chat, thread, cancel = metadata.get("chat"), metadata.get("thread"), metadata.get("cancel")
    prefix = chat_for_channel("")
    return (
        isinstance(metadata.get("form"), str)
        and isinstance(chat, str)
        and chat.startswith(prefix)
        and (thread is None or (isinstance(thread, str) and thread.startswith(chat + "/")))
        and isinstance(cancel, list)
        and len(cancel) == 2
        and all(isinstance(part, str) for part in cancel)
    )


def is_command(text: str) -> bool:
    return text.lstrip().startswith("/")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
