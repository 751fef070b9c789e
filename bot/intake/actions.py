"""What a message can set off, shared by the dispatcher, the chat commands and the dashboard.

Asking an agent, free text routed to one, deciding an approval: each is one method of
`Actions`, and whether a user may talk to agents is decided in one place (`_may_talk`).
`Actions` is given the deck's parts it uses, not the deck: this stage does not import
`bot.deck`. The sweeps the app runs (`sweep_approvals`, `resume_decided`) are functions
of the parts they use.
"""

from __future__ import annotations

import logging
from typing import Protocol

from bot import messages
from bot.access import Access
from bot.config import CurrentConfig, Role
from bot.delivery.postman import Postman
from bot.errors import TransportError
from bot.intake.routing import Answered, Chosen, Routing
from bot.runs import reasons
from bot.runs.approvals import Approvals, DecisionResult
from bot.runs.runner import Origin, Runner
from bot.text import Piece, bold, rich
from bot.types import AsksText, Incoming, Outgoing
from roster.agent import Received
from roster.errors import AgentNotFound, AgentUnavailable
from roster.roster import Roster
from storage.audit import AuditLog
from storage.tasks import TaskSet

log = logging.getLogger(__name__)


def described(files: tuple[Received, ...]) -> str:
    """The text of a message that had only files: what was sent."""
    if not files:
        return ""
    if len(files) == 1 and files[0].kind == "photo":
        return "(sent a photo)"
    return f"(sent {', '.join(f.name for f in files)})"


class Actions:
    def __init__(
        self,
        *,
        config: CurrentConfig,
        roster: Roster,
        access: Access,
        audit: AuditLog,
        postman: Postman,
        runner: Runner,
        routing: Routing,
        approvals: Approvals,
        tasks: TaskSet,
    ) -> None:
        self._config = config
        self._roster = roster
        self._access = access
        self._audit = audit
        self._postman = postman
        self._runner = runner
        self._routing = routing
        self._approvals = approvals
        self._tasks = tasks

    async def reply(self, incoming: Incoming, *pieces: Piece) -> None:
        message = Outgoing(chat=incoming.chat, thread=incoming.thread, text=rich(*pieces))
        await self._postman.send(message)

    def agent_for(self, chat: str) -> str:
        """The chat's bound agent, else the default agent (free text may be routed elsewhere)."""
        for binding in self._config().bindings:
            if binding.chat == chat:
                return binding.agent
        return self._config().deck.default_agent or next(iter(self._roster.names()), "")

    async def ask(
        self,
        incoming: Incoming,
        role: Role,
        agent_name: str,
        text: str,
        *,
        hops: tuple[str, ...] = (),
    ) -> None:
        """Run an agent on a message, if this user may and the agent can."""
        if await self._may_talk(incoming, role):
            await self._run_agent(incoming, agent_name, text, hops=hops)

    async def refuse_role(self, incoming: Incoming, what: str, needed: Role) -> None:
        self._audit.record(incoming.user, "refused.role", what, needed=needed)
        await self.reply(incoming, messages.needs_role(what, needed))

    async def _may_talk(self, incoming: Incoming, role: Role) -> bool:
        """Whether the user may talk to agents; if not, they are told so (and it is audited)."""
        if role.allows(Role.OPERATOR):
            return True
        self._audit.record(incoming.user, "refused.role", "ask", needed=Role.OPERATOR)
        await self.reply(incoming, messages.needs_role("talk to agents", Role.OPERATOR))
        return False

    async def _run_agent(
        self, incoming: Incoming, agent_name: str, text: str, *, hops: tuple[str, ...] = ()
    ) -> None:
        try:
            agent = self._roster.runnable(agent_name)
        except (AgentNotFound, AgentUnavailable) as exc:
            self._audit.record(incoming.user, "ask.refused", agent_name, reason=str(exc))
            await self.reply(incoming, str(exc))
            return
        text = text or described(incoming.received)
        if not text:
            await self.reply(
                incoming, f"What should {agent.name} do? Example: /ask {agent.name} <text>"
            )
            return
        origin = Origin(
            chat=incoming.chat,
            user=incoming.user,
            thread=incoming.thread,
            hops=hops,
            update_key=incoming.update_key,
            files=incoming.received,
        )
        await self._runner.start(agent, origin, text)

    async def route_text(self, incoming: Incoming, role: Role, text: str) -> None:
        """Send free text to the agent routing picks, or ask the user which one."""
        if not await self._may_talk(incoming, role):  # before routing: no router call
            return
        route, spent = await self._routing.route(incoming.chat, incoming.user, text)
        if spent is not None:
            origin = Origin(chat=incoming.chat, user=incoming.user, thread=incoming.thread)
            self._runner.record_call(spent.agent, origin, spent.text, spent.outcome, spent.usage)
        if isinstance(route, Chosen):
            if route.note:
                await self.reply(incoming, route.note)
            await self._run_agent(incoming, route.agent, text, hops=route.hops)
        elif isinstance(route, Answered):
            await self.reply(incoming, bold(route.agent), ": ", route.text)
        elif route.candidates:
            await self._postman.send(self._routing.question(incoming, text, route.candidates))
        else:
            await self.reply(incoming, messages.NO_AGENT_READY)

    async def pick(self, incoming: Incoming, role: Role) -> None:
        """A press on a "which agent?" button: run the picked agent on the waiting message."""
        taken = self._routing.take(incoming)
        if isinstance(taken, str):
            self._audit.record(incoming.user, "press.route_refused", incoming.chat, reason=taken)
            await self._postman.answer_press(incoming, taken, alert=True)
            return
        agent, text = taken
        await self._postman.answer_press(incoming, f"→ {agent}", alert=False)
        await self.ask(incoming, role, agent, text)

    async def decide(
        self, incoming: Incoming, approval_id: str, choice: str, reason: str = ""
    ) -> DecisionResult:
        """Decide an approval and, once decided, resume the run that waits for it.

        Returns what the press achieved (the dashboard shows it on the page).
        """
        verdict = await self._approvals.decide(approval_id, choice, incoming.user, reason)
        if incoming.press is not None:
            await self._postman.answer_press(incoming, verdict.message, alert=verdict.refused)
        elif verdict.decision is None:  # the card shows decisions; say the rest in chat
            await self.reply(incoming, verdict.message)
        if verdict.asks_reason:
            await self.ask_reason(incoming, approval_id)
        if verdict.approval is None or verdict.decision is None:
            return verdict
        resume = self._runner.resume(verdict.approval, verdict.decision)
        self._tasks.spawn(resume, name=f"resume:{verdict.approval.id}")
        return verdict

    async def ask_reason(self, incoming: Incoming, approval_id: str) -> None:
        """Ask the presser for the reason the platform's way; the card says whose it awaits."""
        wait = self._approvals.reasons.start(
            approval_id, chat=incoming.chat, user=incoming.user, thread=incoming.thread
        )
        transport = self._postman.transport_for(incoming.chat)
        if isinstance(transport, AsksText) and incoming.press is not None:
            request = reasons.request_for(wait, self._access.display(incoming.user))
            try:
                wait.prompt = await transport.ask_text(incoming, request)
            except TransportError as exc:
                log.warning("could not ask for the reason of %s: %s", approval_id, exc)
                self._approvals.reasons.cancel(
                    chat=incoming.chat, user=incoming.user, approval_id=approval_id
                )
                said = f"Could not ask for a reason here; /deny {approval_id} <reason> works too."
                await self._postman.answer_press(incoming, said, alert=True)
                return
            wait.by_form = transport.answers_by_form
        else:
            await reasons.post_prompt(self._postman, wait)
        await self._approvals.redraw(approval_id, waiting_for=incoming.user)

    async def cancel_reason(self, incoming: Incoming) -> None:
        """Cancel on a reason prompt or the card (or a closed form): the wait ends; the
        approval stays as it is."""
        assert incoming.press is not None
        wait = self._approvals.reasons.cancel(
            chat=incoming.chat, user=incoming.user, approval_id=incoming.press.value
        )
        if wait is None:
            await self._postman.answer_press(incoming, reasons.NOTHING_TO_CANCEL, alert=True)
            return
        await self._postman.answer_press(incoming, "Cancelled.", alert=False)
        await reasons.close_prompt(self._postman, wait, "Cancelled: no reason will be taken.")
        await self._approvals.redraw(wait.approval_id)

    async def stale_form(self, incoming: Incoming) -> None:
        """A form's answer nobody waits for (from someone else, too late, a command): refused
        to the sender alone, audited, and never handed to an agent."""
        self._audit.record(incoming.user, "reason.refused", incoming.form, chat=incoming.chat)
        await self._postman.answer_press(incoming, reasons.NOT_AWAITED, alert=True)


class Approving(Protocol):
    """What the approval sweeps use of the deck (`bot.deck.Deck` has them all)."""

    approvals: Approvals
    runner: Runner
    postman: Postman
    tasks: TaskSet


async def sweep_approvals(deck: Approving) -> None:
    """Expire what is past its time (the waiting run is told: nothing ran); escalate the rest."""
    for verdict in await deck.approvals.expire_due():
        if verdict.approval is not None and verdict.decision is not None:
            await deck.runner.resume(verdict.approval, verdict.decision)
    await deck.approvals.escalate_due()
    minutes = reasons.REASON_WAIT.total_seconds() / 60
    for wait in deck.approvals.reasons.overdue():
        await reasons.close_prompt(
            deck.postman, wait, f"No reason came within {minutes:g} minutes."
        )
        await deck.approvals.redraw(wait.approval_id)


async def resume_decided(deck: Approving) -> int:
    """At start: carry out decisions a crash kept from their runs; how many."""
    decided = await deck.approvals.decided_unresumed()
    for approval, decision in decided:
        resume = deck.runner.resume(approval, decision)
        deck.tasks.spawn(resume, name=f"resume:{approval.id}")
    return len(decided)
