"""What a message can set off, shared by the dispatcher and the chat commands."""

from __future__ import annotations

from bot import messages
from bot.config import Role
from bot.deck import Deck
from bot.runs import reasons
from bot.runs.approvals import DecisionResult
from bot.runs.runner import Origin
from bot.text import Piece, rich
from bot.types import Incoming, Outgoing
from roster.errors import AgentNotFound, AgentUnavailable


async def reply(deck: Deck, incoming: Incoming, *pieces: Piece) -> None:
    message = Outgoing(chat=incoming.chat, thread=incoming.thread, text=rich(*pieces))
    await deck.postman.send(message)


def agent_for(deck: Deck, chat: str) -> str:
    """The chat's bound agent, else the default agent (free text may be routed elsewhere)."""
    for binding in deck.config.bindings:
        if binding.chat == chat:
            return binding.agent
    return deck.config.deck.default_agent or next(iter(deck.roster.names()), "")


async def ask(
    deck: Deck,
    incoming: Incoming,
    role: Role,
    agent_name: str,
    text: str,
    *,
    hops: tuple[str, ...] = (),
) -> None:
    """Run an agent on a message, if this user may and the agent can."""
    if not role.allows(Role.OPERATOR):
        deck.audit.record(incoming.user, "refused.role", "ask", needed=Role.OPERATOR)
        await reply(deck, incoming, messages.needs_role("talk to agents", Role.OPERATOR))
        return
    try:
        agent = deck.roster.runnable(agent_name)
    except (AgentNotFound, AgentUnavailable) as exc:
        deck.audit.record(incoming.user, "ask.refused", agent_name, reason=str(exc))
        await reply(deck, incoming, str(exc))
        return
    if not text:
        await reply(
            deck, incoming, f"What should {agent.name} do? Example: /ask {agent.name} <text>"
        )
        return
    origin = Origin(
        chat=incoming.chat,
        user=incoming.user,
        thread=incoming.thread,
        hops=hops,
        update_key=incoming.update_key,
    )
    await deck.runner.start(agent, origin, text)


async def decide(
    deck: Deck, incoming: Incoming, approval_id: str, choice: str, reason: str = ""
) -> None:
    """Decide an approval and, once decided, resume the run that waits for it."""
    await take_decision(deck, incoming, approval_id, choice, reason)


async def take_decision(
    deck: Deck, incoming: Incoming, approval_id: str, choice: str, reason: str = ""
) -> DecisionResult:
    """`decide`, returning what the press achieved (the dashboard shows it on the page)."""
    verdict = await deck.approvals.decide(approval_id, choice, incoming.user, reason)
    if incoming.press is not None:
        await deck.postman.answer_press(incoming, verdict.message, alert=verdict.refused)
    elif verdict.decision is None:  # the card shows decisions; say the rest in chat
        await reply(deck, incoming, verdict.message)
    if verdict.asks_reason:
        wait = deck.approvals.reasons.start(
            approval_id, chat=incoming.chat, user=incoming.user, thread=incoming.thread
        )
        await reasons.post_prompt(deck.postman, wait)
    if verdict.approval is None or verdict.decision is None:
        return verdict
    resume = deck.runner.resume(verdict.approval, verdict.decision)
    deck.tasks.spawn(resume, name=f"resume:{verdict.approval.id}")
    return verdict


async def cancel_reason(deck: Deck, incoming: Incoming) -> None:
    """Cancel on a reason prompt: the wait ends; the approval stays as it is."""
    assert incoming.press is not None
    wait = deck.approvals.reasons.cancel(
        chat=incoming.chat, user=incoming.user, approval_id=incoming.press.value
    )
    if wait is None:
        await deck.postman.answer_press(incoming, reasons.NOTHING_TO_CANCEL, alert=True)
        return
    await deck.postman.answer_press(incoming, "Cancelled.", alert=False)
    await reasons.close_prompt(deck.postman, wait, "Cancelled: no reason will be taken.")


async def sweep_approvals(deck: Deck) -> None:
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


async def resume_decided(deck: Deck) -> int:
    """At start: carry out decisions a crash kept from their runs; how many."""
    decided = await deck.approvals.decided_unresumed()
    for approval, decision in decided:
        resume = deck.runner.resume(approval, decision)
        deck.tasks.spawn(resume, name=f"resume:{approval.id}")
    return len(decided)
