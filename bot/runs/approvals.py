"""Approvals: a risky action waits, as a database row, for the people allowed to decide.

The row is the truth: a decision is a compare-and-set on `status = 'pending'`, so it is
taken once even with two presses at the same instant or on two processes. Every
attempt — a stranger's press, a second press, a forged payload, a press after expiry —
changes nothing and leaves an audit event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.access import Access
from bot.delivery.postman import Postman
from bot.runs.cards import Choice, card, outcome_card
from bot.runs.reasons import REASON_PROMPT, ReasonWaits, waiting_card
from bot.types import MessageRef, Outgoing, Queued
from roster.agent import CLI_TOOL, Decision, NeedsApproval
from storage.approvals import CONVERSATION, ApprovalStore
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.models import Approval, ApprovalState
from storage.runs import ActiveRun

log = logging.getLogger(__name__)
MAX_REMEMBERED_CARDS = 1_000  # cards posted by this process, kept until decided
SESSION_INTERRUPTED = "the session was interrupted by a restart; the next message resumes it"
RUN_STOPPED = "the run was stopped while it waited; the next message resumes the session"
LIVE_POLL_SECONDS = 1.0  # a live run looks at its approval's row this often


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a press achieved: a text for the presser, and the decision if one was taken."""

    message: str
    approval: Approval | None = None
    decision: Decision | None = None
    refused: bool = True  # False for decisions, votes and prompts: nothing was turned down
    asks_reason: bool = False  # "Deny with reason" without one: the presser is asked for it


class Approvals:
    def __init__(
        self, *, db: Database, audit: AuditLog, postman: Postman, access: Access, clock: Clock
    ) -> None:
        self._store = ApprovalStore(db)
        self._audit = audit
        self._postman = postman
        self._access = access
        self._clock = clock
        self._lock = asyncio.Lock()  # one vote at a time in this process (quorum counting)
        self.reasons = ReasonWaits(clock)  # "Deny with reason": whose next message is one
        # Cards this process posted, by approval, until it is decided: a press read the
        # approval before its new card was recorded (a console user types at once), and
        # the outcome must still reach that card.
        self._posted: dict[str, list[dict[str, str | None]]] = {}
        # Runs that wait, still live, for a decision (`wait`): it is handed to them here.
        self._live: dict[str, asyncio.Future[Decision]] = {}

    async def request(self, run: ActiveRun, gate: NeedsApproval, preview: str = "") -> Approval:
        """Store the approval, then post its card where the run was asked for."""
        approval = new_approval(run, gate, self._clock.now(), preview=preview)
        await self._store.add(approval)
        self._audit.record(
            run.user_id, "approval.requested", approval.id, agent=run.agent, action=approval.action
        )
        async with self._lock:  # a press that beats the card's stored ref would not edit it
            await self.post_card(approval)
        return approval

    async def wait(self, approval_id: str) -> Decision:
        """The decision on an approval, awaited by a run that is still live.

        A decision taken here arrives at once; one taken by another process (several
        behind one URL) or by the expiry sweep is read from its row, once a second.
        """
        waiting = self._live.setdefault(approval_id, asyncio.get_running_loop().create_future())
        try:
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(waiting), LIVE_POLL_SECONDS)
                except TimeoutError:
                    row = await self._store.get(approval_id)
                    if row is None or row.status != ApprovalState.PENDING:
                        return decision_of(row) if row else Decision(False, "agentdeck")
        except asyncio.CancelledError:  # /stop, or a restart: the card takes no press any more
            await asyncio.shield(self._end_live(approval_id, RUN_STOPPED))
            raise
        finally:
            self._live.pop(approval_id, None)

    async def _end_live(self, approval_id: str, reason: str) -> None:
        async with self._lock:
            approval = await self.get(approval_id)
            if approval is not None and approval.status == ApprovalState.PENDING:
                await self._settle(approval, ApprovalState.EXPIRED, "stop", reason)

    async def granted(self, chat: str, agent: str, action_hash: str) -> Approval | None:
        """An "approve for this conversation" that covers this exact action, if any."""
        return await self._store.granted(chat, agent, action_hash)

    async def end_conversation(self, chat: str) -> None:
        """Conversation-wide approvals end with the conversation (/forget)."""
        await self._store.end_conversation(chat)

    async def post_card(self, approval: Approval, chat: str | None = None) -> None:
        """Post the card (again, or to another chat) and remember where it is."""
        message = card(approval, self._access.display)
        if chat is not None:
            message = Outgoing(chat=chat, text=message.text, buttons=message.buttons)
        try:
            ref = await self._postman.send(message)
        except Exception:  # the card can be listed again with /approvals
            log.exception("could not post the card for approval %s", approval.id)
            return
        if isinstance(ref, Queued):  # the outbox delivers it; not posted again after a restart
            ref = MessageRef(message.chat, "", message.thread)
        copy = _ref_json(ref)
        refs = [*approval.card.get("copies", []), copy]
        approval.card = {**approval.card, "copies": refs}
        self._posted.setdefault(approval.id, []).append(copy)
        while len(self._posted) > MAX_REMEMBERED_CARDS:
            del self._posted[next(iter(self._posted))]
        await self._store.change(approval.id, card=approval.card)
        # Decided on another process while this card went out (a team deck: its place was
        # not stored yet, so that process could not edit it): the outcome is shown here.
        # (A decision taken here has edited the cards this process posted and let go of
        # them: only a copy still held was missed.)
        stored = await self._store.get(approval.id)
        held = self._posted.get(approval.id, [])
        if stored is not None and stored.status != ApprovalState.PENDING and copy in held:
            held.remove(copy)
            await self._edit_copy(copy, outcome_card(stored, self._access.display))

    async def decide(
        self, approval_id: str, choice: str, user: str, reason: str = ""
    ) -> DecisionResult:
        """Take a decision (or a vote) if this user may and it is still open."""
        async with self._lock:
            return await self._decide(approval_id, choice, user, reason)

    async def _decide(
        self, approval_id: str, choice: str, user: str, reason: str
    ) -> DecisionResult:
        approval = await self.get(approval_id)
        known = (Choice.APPROVE, Choice.APPROVE_CONVERSATION, Choice.DENY, Choice.DENY_WITH_REASON)
        if approval is None or choice not in known:
            self._audit.record(user, "approval.forged", approval_id, choice=choice)
            return DecisionResult("No such approval request.")
        refusal = self._refusal(approval, user, choice)
        if refusal is not None:
            return refusal
        if self._clock.now() >= approval.expires_at:
            return await self._expire(approval)
        if choice == Choice.DENY_WITH_REASON and not reason:
            return DecisionResult(REASON_PROMPT, approval, refused=False, asks_reason=True)
        if choice in (Choice.DENY, Choice.DENY_WITH_REASON):
            return await self._settle(approval, ApprovalState.DENIED, user, reason)
        return await self._vote(approval, user, choice)

    def _refusal(self, approval: Approval, user: str, choice: str) -> DecisionResult | None:
        if approval.status != ApprovalState.PENDING:
            self._audit.record(user, "approval.late", approval.id, status=approval.status)
            return DecisionResult(f"Approval {approval.id} was already decided: {approval.status}.")
        if not self._access.is_approver(user, approval.approvers, approval.chat_id):
            self._audit.record(user, "approval.refused", approval.id, reason="not an approver")
            return DecisionResult("You are not one of the approvers of this request.")
        approving = choice in (Choice.APPROVE, Choice.APPROVE_CONVERSATION)
        if (
            approving
            and user == approval.requested_by
            and approval.policy.get("self_approval") is False
        ):
            self._audit.record(user, "approval.refused", approval.id, reason="self-approval")
            return DecisionResult("You asked for this; someone else has to approve it.")
        if approving and user in approval.votes:
            self._audit.record(user, "approval.refused", approval.id, reason="second vote")
            return DecisionResult("You approved this already; it needs another approver.")
        return None

    async def _vote(self, approval: Approval, user: str, choice: str) -> DecisionResult:
        votes = [*approval.votes, user]
        scope = CONVERSATION if choice == Choice.APPROVE_CONVERSATION else "once"
        if len(votes) >= approval.quorum:
            return await self._settle(
                approval, ApprovalState.APPROVED, user, "", votes=votes, scope=scope
            )
        await self._store.change(approval.id, votes=votes)
        approval.votes = votes
        self._audit.record(
            user, "approval.vote", approval.id, votes=len(votes), quorum=approval.quorum
        )
        await self._edit_cards(approval, card(approval, self._access.display))
        return DecisionResult(f"Vote counted: {len(votes)} of {approval.quorum}.", refused=False)

    async def _settle(
        self,
        approval: Approval,
        state: ApprovalState,
        user: str,
        reason: str,
        *,
        votes: list[str] | None = None,
        scope: str = "once",
    ) -> DecisionResult:
        now = self._clock.now()
        values = {"status": state, "decided_by": user, "decided_at": now, "reason": reason or None}
        if votes is not None:
            values |= {"votes": votes, "scope": scope}
        if not await self._store.settle(approval.id, **values):
            self._audit.record(user, "approval.late", approval.id)
            return DecisionResult(f"Approval {approval.id} was already decided.")
        # Read again after the decision is stored: a card another process posted since
        # this one read the row is then known, or that process sees the decision
        # (`post_card`) and edits its card itself.
        if (stored := await self._store.get(approval.id)) is not None:
            approval.card = stored.card
        for key, value in values.items():
            setattr(approval, key, value)
        self._audit.record(
            user, f"approval.{state}", approval.id, agent=approval.agent, reason=reason
        )
        outcome = outcome_card(approval, self._access.display)
        copies = self._copies(approval)
        self._posted.pop(approval.id, None)  # before the edits: `post_card` looks at it
        for copy in copies:
            await self._edit_copy(copy, outcome)
        decision = Decision(approved=state is ApprovalState.APPROVED, by=user, reason=reason)
        waiting = self._live.pop(approval.id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(decision)
        return DecisionResult(f"{state.capitalize()}.", approval, decision, refused=False)

    async def _expire(self, approval: Approval) -> DecisionResult:
        verdict = await self._settle(approval, ApprovalState.EXPIRED, "expiry", "")
        if verdict.approval is None:
            return verdict
        decision = Decision(approved=False, by="expiry", reason="the request expired")
        return DecisionResult(
            "This request has expired; nothing ran.", verdict.approval, decision, refused=True
        )

    async def expire_due(self) -> list[DecisionResult]:
        """Settle every pending approval past its expiry (denied: nothing runs)."""
        async with self._lock:
            rows = await self._store.pending(due_by=self._clock.now())
            return [await self._expire(row) for row in rows]

    async def escalate_due(self) -> list[Approval]:
        """Post unanswered cards again to `escalate_to` once their wait passes the limit."""
        async with self._lock:
            return await self._escalate_due(self._clock.now())

    async def _escalate_due(self, now: datetime) -> list[Approval]:
        escalated = []
        for approval in await self.pending():
            after = approval.policy.get("escalate_after_minutes")
            target = approval.policy.get("escalate_to")
            if not after or not target or approval.escalated_at is not None:
                continue
            if now < approval.created_at + timedelta(minutes=after):
                continue
            await self._mark_escalated(approval, now)
            self._audit.record("escalation", "approval.escalated", approval.id, to=target)
            await self.post_card(approval, chat=target)
            escalated.append(approval)
        return escalated

    async def _mark_escalated(self, approval: Approval, now: datetime) -> None:
        approval.escalated_at = now
        await self._store.change(approval.id, escalated_at=now)

    async def interrupt_live(self, run_ids: set[str]) -> int:
        """After a restart: the cards of live runs it cut (a CLI's permission prompt whose
        process is gone) say so, and take no decision any more. How many."""
        ended = 0
        async with self._lock:
            for approval in await self._store.pending():
                if approval.run_id not in run_ids or approval.action.get("kind") != CLI_TOOL:
                    continue
                verdict = await self._settle(
                    approval, ApprovalState.EXPIRED, "restart", SESSION_INTERRUPTED
                )
                ended += verdict.approval is not None
        return ended

    async def decided_unresumed(self) -> list[tuple[Approval, Decision]]:
        """Decisions a crash kept from their runs (`resume` takes each run once)."""
        return [(row, decision_of(row)) for row in await self._store.decided_unresumed()]

    async def redraw(self, approval_id: str, *, waiting_for: str | None = None) -> None:
        """Show a still pending card again: with "waiting for a reason from …" and Cancel
        while `waiting_for` is asked for one, else as it was (a wait ended, nothing decided)."""
        async with self._lock:  # a decision taken meanwhile keeps its outcome on the card
            approval = await self.get(approval_id)
            if approval is None or approval.status != ApprovalState.PENDING:
                return
            names = self._access.display
            shown = card(approval, names)
            if waiting_for is not None:
                shown = waiting_card(approval, names, waiting_for)
            await self._edit_cards(approval, shown)

    async def get(self, approval_id: str) -> Approval | None:
        return await self._store.get(approval_id)

    async def pending(self) -> list[Approval]:
        return list(await self._store.pending())

    def _copies(self, approval: Approval) -> list[dict[str, Any]]:
        """Where the approval's cards are: as stored, and as this process posted them."""
        copies = list(approval.card.get("copies", []))
        return copies + [c for c in self._posted.get(approval.id, []) if c not in copies]

    async def _edit_cards(self, approval: Approval, message: Outgoing) -> None:
        for copy in self._copies(approval):
            await self._edit_copy(copy, message)

    async def _edit_copy(self, copy: dict[str, Any], message: Outgoing) -> None:
        ref = MessageRef(copy["chat"], copy["message_id"], copy.get("thread"))
        if not ref.message_id:  # delivered later by the outbox: no id to edit
            return
        shown = Outgoing(
            chat=ref.chat, thread=ref.thread, text=message.text, buttons=message.buttons
        )
        try:
            await self._postman.edit(ref, shown)
        except Exception:
            log.exception("could not update a card (%s in %s)", ref.message_id, ref.chat)


def decision_of(approval: Approval) -> Decision:
    """The decision a decided approval stored."""
    approved = approval.status == ApprovalState.APPROVED
    by = approval.decided_by or ("expiry" if approval.status == ApprovalState.EXPIRED else "")
    return Decision(approved=approved, by=by or "an approver", reason=approval.reason or "")


def new_approval(
    run: ActiveRun, gate: NeedsApproval, now: datetime, *, preview: str = ""
) -> Approval:
    """The row of a request: the exact action, and the policy as it is now."""
    policy = gate.policy
    return Approval(
        id=secrets.token_hex(4),
        run_id=run.id,
        agent=run.agent,
        action=gate.action.to_json(),
        action_hash=gate.action.digest(),
        requested_by=run.user_id,
        chat_id=run.chat_id,
        thread_id=run.thread_id,
        approvers=list(policy.approvers),
        quorum=policy.quorum,
        policy=policy.model_dump(
            include={"self_approval", "escalate_after_minutes", "escalate_to"}
        ),
        preview=preview,
        created_at=now,
        expires_at=now + timedelta(minutes=policy.expires_minutes),
    )


def _ref_json(ref: MessageRef) -> dict[str, str | None]:
    return {"chat": ref.chat, "message_id": ref.message_id, "thread": ref.thread}
