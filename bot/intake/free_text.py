"""What a message that names no agent sets off: route it, then ask the chosen agent."""

from __future__ import annotations

from bot import messages
from bot.config import Role
from bot.deck import Deck
from bot.intake import actions
from bot.intake.routing import Answered, Chosen
from bot.runs.runner import Origin
from bot.text import bold
from bot.types import Incoming


async def route_text(deck: Deck, incoming: Incoming, role: Role, text: str) -> None:
    """Send free text to the agent routing picks, or ask the user which one."""
    if not role.allows(Role.OPERATOR):  # before routing: a viewer costs no router call
        deck.audit.record(incoming.user, "refused.role", "ask", needed=Role.OPERATOR)
        await actions.reply(deck, incoming, messages.needs_role("talk to agents", Role.OPERATOR))
        return
    route, spent = await deck.routing.route(incoming.chat, incoming.user, text)
    if spent is not None:
        origin = Origin(chat=incoming.chat, user=incoming.user, thread=incoming.thread)
        deck.runner.record_call(spent.agent, origin, spent.text, spent.outcome, spent.usage)
    if isinstance(route, Chosen):
        if route.note:
            await actions.reply(deck, incoming, route.note)
        await actions.ask(deck, incoming, role, route.agent, text, hops=route.hops)
    elif isinstance(route, Answered):
        await actions.reply(deck, incoming, bold(route.agent), ": ", route.text)
    elif route.candidates:
        await deck.postman.send(deck.routing.question(incoming, text, route.candidates))
    else:
        await actions.reply(deck, incoming, messages.NO_AGENT_READY)


async def pick(deck: Deck, incoming: Incoming, role: Role) -> None:
    """A press on a "which agent?" button: run the picked agent on the waiting message."""
    taken = deck.routing.take(incoming)
    if isinstance(taken, str):
        deck.audit.record(incoming.user, "press.route_refused", incoming.chat, reason=taken)
        await deck.postman.answer_press(incoming, taken, alert=True)
        return
    agent, text = taken
    await deck.postman.answer_press(incoming, f"→ {agent}", alert=False)
    await actions.ask(deck, incoming, role, agent, text)
