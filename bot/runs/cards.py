"""Approval cards: what an approver reads before deciding, and what the card says after."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from bot.text import Piece, bold, code, pre, rich
from bot.types import Button, ButtonStyle, Outgoing
from roster.agent import Action
from storage.models import Approval, ApprovalState

ACTION_ID = "approval"
PREVIEW_CHARS = 1500
# In a Run again card's approval (`card`) and its waiting run's state: the run cut short.
RERUN_OF = "rerun_of"
RUN_AGAIN = "run"  # the action kind of a Run again offer that needs no other approval
# What became of the cut run's processes (`bot.runs.orphans.Left`), as its card says it.
LEFT_SAID = {
    "stopped": " and did not finish ({input}); its processes were stopped.",
    "ended": " ({input}) after its command had ended: its result may or may not have"
    " reached this chat.",
    "elsewhere": " and did not finish ({input}); it ran on another host, where its"
    " processes may still run.",
    "unknown": " and did not finish ({input}).",
}


Names = Callable[[str], str]  # a user id -> how a card names them (`Access.display`)


def as_id(user: str) -> str:
    return user


class Choice:
    """The button values after `<approval id>:`."""

    APPROVE = "approve"
    APPROVE_CONVERSATION = "session"
    DENY = "deny"
    DENY_WITH_REASON = "reason"


def card(approval: Approval, names: Names = as_id) -> Outgoing:
    """The card an approver decides on: who asks, the exact action, who may decide."""
    if is_rerun(approval):
        return rerun_card(approval, names)
    action = Action.from_json(approval.action)
    pieces: list[Piece] = [
        bold("Approval needed"),
        f" ({approval.id})\n",
        f"{names(approval.requested_by)} asks agent ",
        bold(approval.agent),
        " to run:\n",
        pre(describe(action)),
    ]
    if approval.preview:
        pieces += ["Preview:\n", pre(approval.preview[-PREVIEW_CHARS:])]
    pieces.append(_terms(approval, names))
    return Outgoing(
        chat=approval.chat_id,
        thread=approval.thread_id,
        text=rich(*pieces),
        buttons=buttons(approval.id),
    )


def buttons(approval_id: str) -> tuple[Button, ...]:
    def button(label: str, choice: str, style: ButtonStyle) -> Button:
        return Button(label, ACTION_ID, f"{approval_id}:{choice}", style)

    return (
        button("Approve", Choice.APPROVE, ButtonStyle.PRIMARY),
        button("Approve for this conversation", Choice.APPROVE_CONVERSATION, ButtonStyle.DEFAULT),
        button("Deny", Choice.DENY, ButtonStyle.DANGER),
        button("Deny with reason", Choice.DENY_WITH_REASON, ButtonStyle.DANGER),
    )


def _terms(approval: Approval, names: Names) -> str:
    expires = f"Expires {approval.expires_at:%Y-%m-%d %H:%M} UTC."
    return " ".join([expires, *_who(approval, names)])


def approvers_line(approval: Approval, names: Names = as_id) -> str:
    """`approvers: admin, Bob (telegram:1002)`: roles by name, people by name and id."""
    return "approvers: " + ", ".join(names(who) for who in approval.approvers)


def _who(approval: Approval, names: Names) -> list[str]:
    terms = [f"\n{approvers_line(approval, names)}."] if approval.approvers else []
    if approval.quorum > 1:
        terms.append(f"Needs {approval.quorum} approvers ({len(approval.votes)} so far).")
    if approval.policy.get("self_approval") is False:
        terms.append("The requester cannot approve it.")
    return terms


def _deciders(approval: Approval, names: Names) -> tuple[str, str]:
    """(who decided: the voters for an approval, when) as the outcome says them."""
    when = f"{approval.decided_at:%Y-%m-%d %H:%M:%S} UTC" if approval.decided_at else ""
    voters = approval.votes or [approval.decided_by or ""]
    return ", ".join(names(v) for v in voters), when


def outcome_card(approval: Approval, names: Names = as_id) -> Outgoing:
    if is_rerun(approval):
        return rerun_outcome(approval, names)
    action = Action.from_json(approval.action)
    by, when = _deciders(approval, names)
    denier = names(approval.decided_by or "")
    verdict = {
        ApprovalState.APPROVED: f"Approved by {by} at {when}",
        ApprovalState.DENIED: f"Denied by {denier} at {when}",
        ApprovalState.EXPIRED: f"Expired at {when}; nothing ran",
    }.get(ApprovalState(approval.status), str(approval.status))
    if approval.scope == "conversation":
        verdict += " (for this conversation)"
    reason = f": {approval.reason}" if approval.reason else ""
    text = rich(
        bold(verdict + reason),
        f"\n{approval.agent} ",
        code(approval.id),
        "\n",
        pre(describe(action)),
    )
    return Outgoing(chat=approval.chat_id, thread=approval.thread_id, text=text)


def is_rerun(approval: Approval) -> bool:
    """Whether this approval offers to run again a run a crash cut short."""
    return RERUN_OF in approval.card


def cut_short(approval: Approval) -> Piece:
    """What a Run again card says happened to the run."""
    said = LEFT_SAID.get(str(approval.card.get("left")), LEFT_SAID["unknown"])
    return "this run was interrupted by a restart" + said.format(
        input=approval.card.get("input", "")
    )


def rerun_card(approval: Approval, names: Names = as_id) -> Outgoing:
    """The report of a run a crash cut short, with the button that runs it again."""
    until = f"An approver can run it again until {approval.expires_at:%Y-%m-%d %H:%M} UTC."
    terms = " ".join([until, *_who(approval, names)])
    text = rich(bold(approval.agent), ": ", cut_short(approval), "\n", terms)
    again = Button("Run again", ACTION_ID, f"{approval.id}:{Choice.APPROVE}", ButtonStyle.PRIMARY)
    return Outgoing(chat=approval.chat_id, thread=approval.thread_id, text=text, buttons=(again,))


def rerun_outcome(approval: Approval, names: Names = as_id) -> Outgoing:
    by, when = _deciders(approval, names)
    denier = names(approval.decided_by or "")
    verdict = {
        ApprovalState.APPROVED: f"Run again by {by} at {when}.",
        ApprovalState.DENIED: f"Not run again: declined by {denier} at {when}.",
        ApprovalState.EXPIRED: f"Not run again: the offer expired at {when}.",
    }.get(ApprovalState(approval.status), str(approval.status))
    text = rich(bold(approval.agent), ": ", cut_short(approval), "\n", bold(verdict))
    return Outgoing(chat=approval.chat_id, thread=approval.thread_id, text=text)


def progress_card(approval: Approval, names: Names = as_id) -> Outgoing:
    """A card that still waits, showing the votes so far (quorum)."""
    return card(approval, names)


def describe(action: Action) -> str:
    """The exact action, as the approver should read it; secrets appear by name only."""
    if action.kind == RUN_AGAIN:
        return f"run {action.agent} again on: {action.arguments.get('input', '')}"
    if action.argv:
        line = shlex.join(action.argv)
        return f"{line}\n(in {action.cwd})" if action.cwd else line
    args = ", ".join(f"{k}={v!r}" for k, v in action.arguments.items())
    return f"{action.tool}({args})"


def parse_press(value: str) -> tuple[str, str]:
    """`"ab12cd34:approve"` -> `("ab12cd34", "approve")`; anything else is forged."""
    approval_id, _, choice = value.partition(":")
    return approval_id[:32], choice[:16]
