"""Deny with reason: the wait for the reason, asked for the way the platform can ask.

Telegram asks with a ForceReply on the card's message (the reason is the decider's next
plain message there); Slack opens a modal, and only its answer counts (`by_form`): the
next thread message is not a reason, nor is anyone else's answer. Where a platform has
neither (the console), a prompt with a Cancel button is posted. Meanwhile the card says
whose reason it waits for, with a Cancel button; the text alone is the reason.

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.delivery.postman import Postman
from bot.runs.cards import Names, card
from bot.text import link, rich
from bot.types import Button, Incoming, MessageRef, Outgoing, TextRequest
from storage.models import Approval

if TYPE_CHECKING:
    from storage.clock import Clock

log = logging.getLogger(__name__)

REASON_WAIT = timedelta(minutes=5)
CANCEL_ACTION = "reason"  # the Cancel button on the prompt; its value is the approval id
REASON_PROMPT = "Send the reason as your next message; it goes back to the agent."
NOTHING_TO_CANCEL = "Nothing to cancel: no reason is awaited from you for this approval."
NOT_AWAITED = "No reason is awaited from you for that approval (any more); nothing was decided."
FORM = "reason:"  # a reason form's id: `reason:<approval id>`


@dataclass(slots=True)
class ReasonWait:
    """One decider's wait in one chat; `prompt` is set once the prompt is posted."""

    approval_id: str
    chat: str
    user: str
    thread: str | None
    until: datetime
    prompt: MessageRef | None = None
    by_form: bool = False  # only the answer to the form opened for it counts (Slack's modal)

    def takes(self, incoming: Incoming) -> bool:
        """Whether this message is the awaited reason (the wait's time is checked apart)."""
        if is_command(incoming):
            return False
        if self.by_form:
            return incoming.form == form_of(self.approval_id)
        return not incoming.form


def is_command(incoming: Incoming) -> bool:
    """A command, in any transport's form: never a reason."""
    return incoming.slash_command or incoming.text.lstrip().startswith("/")


def form_of(approval_id: str) -> str:
    return f"{FORM}{approval_id}"


def cancel_button(approval_id: str) -> Button:
    return Button("Cancel", CANCEL_ACTION, approval_id)


def request_for(wait: ReasonWait, who: str) -> TextRequest:
    """What the platform's own way of asking shows (a ForceReply prompt, a modal)."""
    minutes = REASON_WAIT.total_seconds() / 60
    person = wait.user.partition(":")[2]
    mention = link(who, f"tg://user?id={person}") if wait.user.startswith("telegram:") else who
    prompt = rich(
        mention,
        f": reply with the reason for denying {wait.approval_id}, within {minutes:g} minutes;"
        " it goes back to the agent. Commands still run as commands.",
    )
    return TextRequest(
        form=form_of(wait.approval_id),
        title="Deny with reason",
        prompt=prompt,
        label=f"Why deny {wait.approval_id}?",
        cancel=cancel_button(wait.approval_id),
    )


def waiting_card(approval: Approval, names: Names, user: str) -> Outgoing:
    """The card while a reason is awaited: whose, and a Cancel button beside the others."""
    shown = card(approval, names)
    text = (*shown.text, *rich(f"\nWaiting for a reason from {names(user)}…"))
    return replace(shown, text=text, buttons=(*shown.buttons, cancel_button(approval.id)))


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
        if wait is None or not wait.takes(incoming) or self._clock.now() >= wait.until:
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
    message = Outgoing(wait.chat, rich(text), wait.thread, (cancel_button(wait.approval_id),))
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
