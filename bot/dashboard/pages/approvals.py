"""Approvals: the waiting cards as chat shows them; a decision here is a chat press.

The press is built as an `Incoming` from the signed-in chat identity and goes through
the same decision path as a button in chat (`bot.intake.actions`): approvers, quorum,
self-approval, expiry and the audit apply unchanged.

Approving a destructive action (`bot.runs.destructive`) takes two posts: the first
shows a confirmation page whose form names the exact action (a prefix of its hash), the
second decides. Both carry the session's CSRF token.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from markupsafe import Markup

from bot.access import Access
from bot.config import Role
from bot.dashboard.auth import Viewer
from bot.dashboard.web import action, page, render, rich_html, see_other
from bot.delivery.postman import Postman
from bot.intake.actions import Actions
from bot.runs.approvals import Approvals
from bot.runs.cards import ACTION_ID, Choice, card, outcome_card
from bot.runs.destructive import ToolHint, is_destructive
from bot.types import Incoming, Press
from roster.agent import Action
from roster.mcp.pool import McpPool
from roster.roster import Roster
from storage import history
from storage.audit import AuditLog
from storage.db import Database
from storage.models import Approval, ApprovalState

MAX_REASON_CHARS = 500
APPROVING = (Choice.APPROVE, Choice.APPROVE_CONVERSATION)
CONFIRM_CHARS = 16


@dataclass(frozen=True, slots=True)
class Parts:
    """What the approvals page uses."""

    approvals: Approvals
    db: Database
    postman: Postman
    audit: AuditLog
    access: Access
    roster: Roster
    mcp: McpPool
    actions: Actions


PARTS = web.AppKey("approvals", Parts)


@dataclass(frozen=True, slots=True)
class CardView:
    approval: Approval
    html: Markup
    may_decide: bool
    destructive: bool = False


@page()
async def approvals(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    pending = [_view(parts, viewer, row) for row in await parts.approvals.pending()]
    decided = [_decided(parts, row) for row in await history.decided_approvals(parts.db, 20)]
    return render(
        request,
        "approvals.html",
        viewer,
        pending=pending,
        decided=decided,
        may_operate=viewer.may(Role.OPERATOR),
    )


@action(Role.OPERATOR)
async def decide(request: web.Request, viewer: Viewer, form: dict[str, str]) -> web.StreamResponse:
    """POST /approvals/{approval_id}: choice (and reason), as a press in the viewer's chat."""
    parts = request.app[PARTS]
    approval_id = request.match_info["approval_id"][:32]
    choice = form.get("choice", "")[:16]
    reason = " ".join(form.get("reason", "").split())[:MAX_REASON_CHARS]
    if choice == Choice.DENY_WITH_REASON and not reason:
        see_other(request, viewer, "/approvals", "Write the reason first, then deny with it.")
    if not parts.postman.knows(viewer.chat):
        parts.audit.record(viewer.user, "dashboard.refused", approval_id, reason="chat unreachable")
        see_other(
            request,
            viewer,
            "/approvals",
            f"The chat you signed in from ({viewer.chat}) is not reachable now; decide in chat.",
        )
    if choice in APPROVING:
        unconfirmed = await _unconfirmed(parts, viewer, approval_id, form.get("confirm", ""))
        if unconfirmed is not None:
            return _confirmation(request, viewer, parts, unconfirmed, choice)
    press = _press(viewer, approval_id, choice)
    parts.audit.record(viewer.user, "dashboard.press", approval_id, choice=choice)
    verdict = await parts.actions.decide(press, approval_id, choice, reason)
    see_other(request, viewer, "/approvals", verdict.message)


async def _unconfirmed(
    parts: Parts, viewer: Viewer, approval_id: str, confirm: str
) -> Approval | None:
    """The approval, when it is destructive and this post did not confirm exactly it.

    Only an approver's press on a pending approval is asked to confirm; any other press
    goes on to the decision path, which refuses it and says why, as in chat.
    """
    approval = await parts.approvals.get(approval_id)
    if approval is None or approval.status != ApprovalState.PENDING:
        return None
    if not parts.access.is_approver(viewer.user, approval.approvers, approval.chat_id):
        return None
    if not is_destructive(Action.from_json(approval.action), parts.roster, _hints(parts)):
        return None
    return None if confirm == approval.action_hash[:CONFIRM_CHARS] else approval


def _confirmation(
    request: web.Request, viewer: Viewer, parts: Parts, approval: Approval, choice: str
) -> web.Response:
    parts.audit.record(viewer.user, "dashboard.confirm_asked", approval.id, choice=choice)
    return render(
        request,
        "confirm.html",
        viewer,
        view=_view(parts, viewer, approval),
        choice=choice,
        confirm=approval.action_hash[:CONFIRM_CHARS],
    )


def _hints(parts: Parts) -> tuple[ToolHint, ...]:
    """An MCP tool's own word on whether it destroys (`destructiveHint`)."""
    return (lambda action: parts.mcp.destructive(action.tool or ""),)


def _press(viewer: Viewer, approval_id: str, choice: str) -> Incoming:
    """The button press this form stands for, made by the viewer's chat identity."""
    return Incoming(
        transport=viewer.chat.partition(":")[0],
        chat=viewer.chat,
        user=viewer.user,
        press=Press(ACTION_ID, f"{approval_id}:{choice}"),
        private=True,
    )


def _view(parts: Parts, viewer: Viewer, approval: Approval) -> CardView:
    shown = parts.postman.scrub(card(approval, parts.access.display))
    may = viewer.may(Role.OPERATOR) and parts.access.is_approver(
        viewer.user, approval.approvers, approval.chat_id
    )
    destructive = is_destructive(Action.from_json(approval.action), parts.roster, _hints(parts))
    return CardView(approval, rich_html(shown.text), may, destructive)


def _decided(parts: Parts, approval: Approval) -> CardView:
    return CardView(
        approval,
        rich_html(parts.postman.scrub(outcome_card(approval, parts.access.display)).text),
        False,
    )
