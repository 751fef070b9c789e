"""Deny with reason: the wait for the reason, which is the decider's next plain message.

Only plain text is a reason. A command (`/secret set NAME value`, Slack's `/deck …`)
runs as a command and the wait goes on: a value typed for a command must never become
a reason, stored with the approval, the run and the audit trail. The wait ends with the
reason, with Cancel on its prompt, or REASON_WAIT after the press (checked when the next
message comes, and by the approvals sweep, which says so on the prompt). An ended wait
decides nothing: the approval stays pending, its card's buttons still work, and it
expires as its policy says. Waits live in this process only; a restart ends them. The
message taken as a reason is claimed in the inbox before it decides (the dispatcher), so
a restart or a redelivery neither takes it again nor hands it to an agent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.delivery.postman import Postman
from bot.text import rich
from bot.types import Button, Incoming, MessageRef, Outgoing

if TYPE_CHECKING:
    from storage.clock import Clock

log = logging.getLogger(__name__)

REASON_WAIT = timedelta(minutes=5)
CANCEL_ACTION = "reason"  # the Cancel button on the prompt; its value is the approval id
REASON_PROMPT = "Send the reason as your next message; it goes back to the agent."
NOTHING_TO_CANCEL = "Nothing to cancel: no reason is awaited from you for this approval."


@dataclass(slots=True)
class ReasonWait:
    """One decider's wait in one chat; `prompt` is set once the prompt is posted."""

    approval_id: str
    chat: str
    user: str
    thread: str | None
    until: datetime
    prompt: MessageRef | None = None


def is_command(incoming: Incoming) -> bool:
    """A command, in any transport's form: never a reason."""
    return incoming.slash_command or incoming.text.lstrip().startswith("/")


class ReasonWaits:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._waits: dict[tuple[str, str], ReasonWait] = {}  # (chat, user) -> its wait

    def start(self, approval_id: str, *, chat: str, user: str, thread: str | None) -> ReasonWait:
        """Wait for this user's next plain message in this chat (a newer wait replaces one)."""
        until = self._clock.now() + REASON_WAIT
        wait = ReasonWait(approval_id, chat, user, thread, until)
        self._waits[(chat, user)] = wait
        return wait

    def take(self, incoming: Incoming) -> str | None:
        """The approval this message is the reason for; None for commands and other text.

        A wait past its time stays until the sweep ends it (and says so on its prompt).
        """
        if not self._waits:  # the common case: one check on the hot path
            return None
        key = (incoming.chat, incoming.user)
        wait = self._waits.get(key)
        if wait is None or is_command(incoming) or self._clock.now() >= wait.until:
            return None
        del self._waits[key]
        return wait.approval_id

    def cancel(self, *, chat: str, user: str, approval_id: str) -> ReasonWait | None:
        """End this user's wait for this approval here; None when there is none."""
        wait = self._waits.get((chat, user))
        if wait is None or wait.approval_id != approval_id:
            return None
        return self._waits.pop((chat, user))

    def overdue(self) -> list[ReasonWait]:
        """End and return the waits past their time."""
        now = self._clock.now()
        ended = [wait for wait in self._waits.values() if now >= wait.until]
        for wait in ended:
            del self._waits[(wait.chat, wait.user)]
        return ended


async def post_prompt(postman: Postman, wait: ReasonWait) -> None:
    """Ask for the reason where the button was pressed, with a Cancel button."""
    minutes = REASON_WAIT.total_seconds() / 60
    text = (
        f"{wait.user}: send the reason for denying {wait.approval_id} as your next message, "
        f"within {minutes:g} minutes; it goes back to the agent. Commands still run as commands."
    )
    cancel = Button("Cancel", CANCEL_ACTION, wait.approval_id)
    message = Outgoing(wait.chat, rich(text), wait.thread, (cancel,))
    sent = await postman.send(message)
    if isinstance(sent, MessageRef):  # else the outbox delivers it later: nothing to edit
        wait.prompt = sent


async def close_prompt(postman: Postman, wait: ReasonWait, why: str) -> None:
    """Say on the prompt why the wait ended, and that the approval is still open."""
    if wait.prompt is None or not wait.prompt.message_id:
        return
    text = f"{why} Approval {wait.approval_id} is still open: the buttons on its card still work."
    try:
        await postman.edit(wait.prompt, Outgoing.plain(wait.chat, text, wait.thread))
    except Exception:  # the wait has ended either way
        log.exception("could not update the reason prompt of approval %s", wait.approval_id)
