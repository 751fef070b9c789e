"""/model: which model each llm agent uses in this chat, and switching it.

`/model` shows every llm agent's model here and its choices (the agent's `models`, else
`[llm.models]` of its provider); `/model <agent> <model>` switches it for this chat and
`/model <agent> default` goes back. A switch is stored (`storage.chat_models`), holds
across restarts, is audited, and takes only a listed choice: a chat cannot point an
agent at a model nobody priced or allowed. Viewers may look; operators switch.
"""

from __future__ import annotations

from bot.commands import command
from bot.config import Role
from bot.intake.actions import Actions
from bot.intake.command_spec import CommandContext
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound
from roster.llm import LLMAgent
from roster.providers import ModelName, Providers
from roster.roster import Roster
from storage.audit import AuditLog
from storage.chat_models import ChatModels

DEFAULT_WORD = "default"
USAGE = "Usage: /model, /model <agent>, /model <agent> <model>, /model <agent> default"


class ModelCommands:
    """The model each llm agent uses in a chat, and switching it."""

    def __init__(
        self,
        *,
        roster: Roster,
        chat_models: ChatModels,
        providers: Providers,
        audit: AuditLog,
        actions: Actions,
    ) -> None:
        self._roster = roster
        self._chat_models = chat_models
        self._providers = providers
        self._audit = audit
        self._actions = actions

    @command(
        "model",
        role=Role.VIEWER,
        help="the model each agent uses here; switch it for this chat",
        usage="[<agent> [<model>|default]]",
    )
    async def model(self, ctx: CommandContext) -> None:
        words = ctx.args.split()
        if len(words) > 2:
            await ctx.reply(USAGE)
            return
        agents = await self._llm_agents(ctx, words[:1])
        if agents is None:
            return
        if len(words) < 2:
            await self._show(ctx, agents)
            return
        if not ctx.role.allows(Role.OPERATOR):
            await self._actions.refuse_role(ctx.incoming, "switch models", Role.OPERATOR)
            return
        await self._switch(ctx, agents[0], words[1])

    async def _llm_agents(self, ctx: CommandContext, named: list[str]) -> list[LLMAgent] | None:
        """The llm agents the command is about (all, or the one named); None once refused."""
        roster = self._roster
        if not named:
            return [agent for agent in roster if isinstance(agent, LLMAgent)]
        try:
            agent = roster.get(named[0])
        except AgentNotFound as exc:
            await ctx.reply(str(exc))
            return None
        if not isinstance(agent, LLMAgent):
            await ctx.reply(f"{agent.name} is not a model agent; /model is for llm agents.")
            return None
        return [agent]

    async def _show(self, ctx: CommandContext, agents: list[LLMAgent]) -> None:
        if not agents:
            await ctx.reply("No llm agents in the roster.")
            return
        picked = await self._chat_models.of_chat(ctx.incoming.chat)
        lines: list[Piece] = [bold("Models in this chat"), "\n"]
        for agent in agents:
            chain = await agent.chain(ctx.incoming.chat)
            now = chain[0].label
            note = " (switched here)" if agent.name in picked and picked[agent.name] == now else ""
            choices = ", ".join(name.label for name in self._choices(ctx, agent))
            lines += [bold(agent.name), ": ", code(now), f"{note} · choices: {choices}\n"]
        lines += ["Switch with ", code("/model <agent> <model>"), ", back with ", code("default")]
        await ctx.reply(*lines)

    async def _switch(self, ctx: CommandContext, agent: LLMAgent, wanted: str) -> None:
        chat = ctx.incoming.chat
        if wanted.lower() == DEFAULT_WORD:
            cleared = await self._chat_models.clear(chat, agent.name)
            self._audit.record(ctx.user, "model.reset", agent.name, chat=chat, changed=cleared)
            own = ModelName(agent.spec.provider, agent.spec.model).label
            await ctx.reply(bold(agent.name), " uses its own model again: ", code(own))
            return
        name = self._providers.allowed(agent.spec, wanted)
        if name is None:
            choices = ", ".join(n.label for n in self._choices(ctx, agent))
            self._audit.record(ctx.user, "model.refused", agent.name, chat=chat, model=wanted[:300])
            await ctx.reply(f"{wanted[:100]} is not a choice for {agent.name}. Choices: {choices}.")
            return
        before = (await agent.chain(chat))[0].label
        await self._chat_models.choose(chat, agent.name, name.label, by=ctx.user)
        self._audit.record(
            ctx.user, "model.switched", agent.name, chat=chat, model=name.label, before=before
        )
        await ctx.reply(bold(agent.name), " now uses ", code(name.label), " in this chat.")

    def _choices(self, ctx: CommandContext, agent: LLMAgent) -> list[ModelName]:
        return self._providers.choices(agent.spec)
