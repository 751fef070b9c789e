"""The welcome `/start` gives (and a redeemed invite): who the bot is, your role, how to ask."""

from __future__ import annotations

from bot.config import Role
from bot.deck import Deck
from bot.intake import actions
from bot.text import Piece, bold, code
from bot.types import Incoming


def welcome(deck: Deck, incoming: Incoming, role: Role) -> list[Piece]:
    lines: list[Piece] = [
        "Hello, I am ",
        bold("agentdeck"),
        ", a bot that runs agents for this team. You are ",
        bold(f"{role.value}"),
        f" here ({incoming.user}).\n",
    ]
    if role.allows(Role.OPERATOR):
        usable = [a.name for a in deck.roster if deck.roster.unavailable_reason(a) is None]
        default = actions.agent_for(deck, incoming.chat)
        lines += [
            "Agents you may use: ",
            ", ".join(usable) or "none right now",
            f".\nSend plain text to talk to {default}, ",
            code("@agent text"),
            " or ",
            code("/ask agent text"),
            " to pick another.\n",
        ]
    else:
        lines.append("You may read what goes on (/status, /runs, /jobs, /cost); ")
        lines.append("an admin can make you an operator to talk to agents.\n")
    lines += [code("/help"), " lists every command you may use."]
    return lines
