"""The welcome `/start` gives (and a redeemed invite): who the bot is, your role, how to ask.

Here rather than in `bot.commands`: the dispatcher answers a stranger's `/start <code>`
itself (before any command runs), and this stage does not import the commands.
"""

from __future__ import annotations

from bot.access import Access
from bot.config import Role
from bot.intake.actions import Actions
from bot.invites import Joined
from bot.text import Piece, bold, code
from bot.types import Incoming
from roster.roster import Roster


class Welcome:
    def __init__(self, *, roster: Roster, access: Access, actions: Actions) -> None:
        self._roster = roster
        self._access = access
        self._actions = actions

    def text(self, incoming: Incoming, role: Role) -> list[Piece]:
        lines: list[Piece] = [
            "Hello, I am ",
            bold("agentdeck"),
            ", a bot that runs agents for this team. You are ",
            bold(f"{role.value}"),
            f" here ({incoming.user}).\n",
        ]
        if role.allows(Role.OPERATOR):
            usable = [a.name for a in self._roster if self._roster.unavailable_reason(a) is None]
            default = self._actions.agent_for(incoming.chat)
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

    def joined(self, incoming: Incoming, joined: Joined | str) -> list[Piece]:
        """What a redeemed code says: the refusal, or that they were added and the welcome."""
        if isinstance(joined, str):
            return [joined]
        by = self._access.display(joined.invited_by)
        added = f"You were added as {joined.role} (invited by {by}).\n"
        return [added, *self.text(incoming, joined.role)]
