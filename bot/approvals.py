"""Approvals: a risky action waits, as a database row, for the people allowed to decide.

The row is the truth: a decision is a compare-and-set on `status = 'pending'`, so it
is taken once even with two presses at the same instant or two processes.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select, update

from bot.access import Access
from bot.postman import Postman
from bot.text import bold, code, pre, rich
from bot.types import Button, ButtonStyle, MessageRef, Outgoing
from roster.agent import Action, Decision, NeedsApproval
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.models import Approval, ApprovalState, Run

log = logging.getLogger(__name__)

ACTION_ID = "approval"
CHOICES = {"approve": ApprovalState.APPROVED, "deny": ApprovalState.DENIED}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a press achieved: a text for the presser, and the decision if one was taken."""

    message: str
    approval: Approval | None = None
    decision: Decision | None = None

    @property
    def refused(self) -> bool:
        return self.decision is None


class Approvals:
    def __init__(
        self, *, db: Database, audit: AuditLog, postman: Postman, access: Access, clock: Clock
    ) -> None:
        self._db = db
        self._audit = audit
        self._postman = postman
        self._access = access
        self._clock = clock

    async def request(self, run: Run, gate: NeedsApproval) -> Approval:
        """Store the approval, then post its card where the run was asked for."""
        now = self._clock.now()
        approval = Approval(
            id=secrets.token_hex(4),
            run_id=run.id,
            agent=run.agent,
            action=gate.action.to_json(),
            action_hash=gate.action.digest(),
            requested_by=run.user_id,
            chat_id=run.chat_id,
            thread_id=run.thread_id,
            approvers=list(gate.policy.approvers),
            quorum=gate.policy.quorum,
            created_at=now,
            expires_at=now + timedelta(minutes=gate.policy.expires_minutes),
        )
        async with self._db.session() as session:
            session.add(approval)
            await session.commit()
        self._audit.record(
            run.user_id, "approval.requested", approval.id, agent=run.agent, action=approval.action
        )
        await self._post_card(approval)
        return approval

    async def _post_card(self, approval: Approval) -> None:
        try:
            ref = await self._postman.send(card(approval))
        except Exception:  # the card can be listed again with /approvals
            log.exception("could not post the card for approval %s", approval.id)
            return
        approval.card = {"chat": ref.chat, "message_id": ref.message_id, "thread": ref.thread}
        async with self._db.session() as session:
            await session.exec(
                update(Approval).where(col(Approval.id) == approval.id).values(card=approval.card)
            )
            await session.commit()

    async def decide(self, approval_id: str, choice: str, user: str, reason: str = "") -> Verdict:
        """Take a decision if this user may and it is still open; audit every attempt."""
        wanted = CHOICES.get(choice)
        approval = await self.get(approval_id) if wanted else None
        if approval is None or wanted is None:
            self._audit.record(user, "approval.forged", approval_id, choice=choice)
            return Verdict("No such approval request.")
        if approval.status != ApprovalState.PENDING:
            self._audit.record(user, "approval.late", approval.id, status=approval.status)
            return Verdict(f"Approval {approval.id} was already decided: {approval.status}.")
        if self._clock.now() >= approval.expires_at:
            return await self._expire(approval)
        if not self._access.is_approver(user, approval.approvers):
            self._audit.record(user, "approval.refused", approval.id, reason="not an approver")
            return Verdict("You are not one of the approvers of this request.")
        return await self._settle(approval, wanted, user, reason)

    async def _settle(
        self, approval: Approval, state: ApprovalState, user: str, reason: str
    ) -> Verdict:
        now = self._clock.now()
        async with self._db.session() as session:
            result = await session.exec(
                update(Approval)
                .where(
                    col(Approval.id) == approval.id, col(Approval.status) == ApprovalState.PENDING
                )
                .values(status=state, decided_by=user, decided_at=now, reason=reason or None)
            )
            await session.commit()
        if result.rowcount != 1:
            self._audit.record(user, "approval.late", approval.id)
            return Verdict(f"Approval {approval.id} was already decided.")
        approval.status, approval.decided_by, approval.decided_at = state, user, now
        approval.reason = reason or None
        self._audit.record(
            user, f"approval.{state}", approval.id, agent=approval.agent, reason=reason
        )
        await self._show_outcome(approval)
        decision = Decision(approved=state is ApprovalState.APPROVED, by=user, reason=reason)
        return Verdict(f"{state.capitalize()}.", approval, decision)

    async def _expire(self, approval: Approval) -> Verdict:
        verdict = await self._settle(approval, ApprovalState.EXPIRED, "expiry", "")
        if verdict.decision is None:
            return verdict
        decision = Decision(approved=False, by="expiry", reason="the request expired")
        return Verdict("This request has expired; nothing ran.", verdict.approval, decision)

    async def expire_due(self) -> list[Verdict]:
        """Settle every pending approval past its expiry (denied: nothing runs)."""
        async with self._db.session() as session:
            rows = (
                await session.exec(
                    select(Approval).where(
                        Approval.status == ApprovalState.PENDING,
                        col(Approval.expires_at) <= self._clock.now(),
                    )
                )
            ).all()
        return [await self._expire(row) for row in rows]

    async def get(self, approval_id: str) -> Approval | None:
        async with self._db.session() as session:
            return await session.get(Approval, approval_id)

    async def pending(self) -> list[Approval]:
        async with self._db.session() as session:
            query = select(Approval).where(Approval.status == ApprovalState.PENDING)
            return list((await session.exec(query.order_by(col(Approval.created_at)))).all())

    async def _show_outcome(self, approval: Approval) -> None:
        if not approval.card:
            return
        ref = MessageRef(
            approval.card["chat"], approval.card["message_id"], approval.card.get("thread")
        )
        try:
            await self._postman.edit(ref, outcome_card(approval))
        except Exception:
            log.exception("could not update the card of approval %s", approval.id)


def card(approval: Approval) -> Outgoing:
    action = Action.from_json(approval.action)
    lines = rich(
        bold("Approval needed"),
        f" ({approval.id})\n",
        f"{approval.requested_by} asks agent ",
        bold(approval.agent),
        " to run:\n",
        pre(describe(action)),
        f"Expires {approval.expires_at:%Y-%m-%d %H:%M} UTC.",
    )
    buttons = (
        Button("Approve", ACTION_ID, f"{approval.id}:approve", ButtonStyle.PRIMARY),
        Button("Deny", ACTION_ID, f"{approval.id}:deny", ButtonStyle.DANGER),
    )
    return Outgoing(chat=approval.chat_id, thread=approval.thread_id, text=lines, buttons=buttons)


def outcome_card(approval: Approval) -> Outgoing:
    action = Action.from_json(approval.action)
    when = f"{approval.decided_at:%Y-%m-%d %H:%M:%S} UTC" if approval.decided_at else ""
    verdict = {
        ApprovalState.APPROVED: f"Approved by {approval.decided_by} at {when}",
        ApprovalState.DENIED: f"Denied by {approval.decided_by} at {when}",
        ApprovalState.EXPIRED: f"Expired at {when}; nothing ran",
    }.get(ApprovalState(approval.status), str(approval.status))
    reason = f" ({approval.reason})" if approval.reason else ""
    text = rich(
        bold(verdict + reason),
        f"\n{approval.agent} ",
        code(approval.id),
        "\n",
        pre(describe(action)),
    )
    return Outgoing(chat=approval.chat_id, thread=approval.thread_id, text=text)


def describe(action: Action) -> str:
    """The exact action, as the approver should read it."""
    import shlex

    if action.argv:
        line = shlex.join(action.argv)
        return f"{line}\n(in {action.cwd})" if action.cwd else line
    args = ", ".join(f"{k}={v!r}" for k, v in action.arguments.items())
    return f"{action.tool}({args})"


def parse_press(value: str) -> tuple[str, str]:
    """`"ab12cd34:approve"` -> `("ab12cd34", "approve")`; anything else is forged."""
    approval_id, _, choice = value.partition(":")
    return approval_id[:32], choice[:16]
