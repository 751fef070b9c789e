"""Commands about agents: /start /help /agents /ask /stop /enable /disable."""

from __future__ import annotations

from bot import markdown
from bot.commands import command
from bot.commands.invites import InviteCommands
from bot.config import Role
from bot.intake.actions import Actions
from bot.intake.command_spec import CommandContext
from bot.intake.welcome import Welcome
from bot.runs.brakes import Brakes
from bot.runs.runner import Runner
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound
from roster.mcp.pool import McpPool
from roster.roster import Roster
from roster.spec import LLMAgentSpec
from storage.audit import AuditLog


class AgentCommands:
    """The agents: who they are, asking one, stopping and switching them."""

    def __init__(
        self,
        *,
        roster: Roster,
        runner: Runner,
        brakes: Brakes,
        audit: AuditLog,
        mcp: McpPool,
        actions: Actions,
        welcome: Welcome,
        invites: InviteCommands,
    ) -> None:
        self._roster = roster
        self._runner = runner
        self._brakes = brakes
        self._audit = audit
        self._mcp = mcp
        self._actions = actions
        self._welcome = welcome
        self._invites = invites

    @command(
        "start",
        role=Role.VIEWER,
        help="who I am and what you may do here (`/start <code>` redeems an invite)",
        usage="[code]",
        immediate=True,
        private_args=True,  # an invite code: never stored in the inbox, never echoed on Slack
    )
    async def start(self, ctx: CommandContext) -> None:
        """The first thing every Telegram user sends: a welcome that says how to begin."""
        if ctx.args:
            await self._invites.join(ctx)
            return
        await ctx.reply(*self._welcome.text(ctx.incoming, ctx.role))

    @command("help", role=Role.VIEWER, help="what I can do")
    async def help_(self, ctx: CommandContext) -> None:
        lines: list[Piece] = [bold("Commands"), "\n"]
        for spec in sorted(ctx.commands.values(), key=lambda s: s.name):
            if ctx.role.allows(spec.role):
                usage = f" {spec.usage}" if spec.usage else ""
                lines += [code(f"/{spec.name}{usage}"), " ", *markdown.inline(spec.help), "\n"]
        default = self._actions.agent_for(ctx.incoming.chat)
        lines += [f"Plain text goes to {default}; ", code("@agent text"), " or /ask picks another."]
        await ctx.reply(*lines)

    @command("agents", role=Role.VIEWER, help="the roster and what each agent needs")
    async def agents(self, ctx: CommandContext) -> None:
        lines: list[Piece] = [bold("Agents"), "\n"]
        for agent in self._roster:
            reason = self._roster.unavailable_reason(agent)
            state = f"unavailable: {reason}" if reason else "ready"
            kind = getattr(agent.spec, "kind", "?")
            sandbox = getattr(agent.spec, "sandbox", None)  # codex: what its commands may touch
            if sandbox is not None:
                kind += f", sandbox {sandbox}"
            lines += [bold(agent.name), f" ({kind}, {state}) {agent.spec.description}\n"]
            lines += tool_lines(self._mcp, agent.spec)
        await ctx.reply(*lines)

    @command(
        "ask", role=Role.OPERATOR, help="ask one agent", usage="<agent> <text>", with_agents=True
    )
    async def ask(self, ctx: CommandContext) -> None:
        name, _, text = ctx.args.partition(" ")
        if not name:
            await ctx.reply("Usage: /ask <agent> <text>. Agents: ", ", ".join(self._roster.names()))
            return
        await self._actions.ask(ctx.incoming, ctx.role, name, text.strip())

    @command(
        "stop",
        role=Role.OPERATOR,
        help="stop an agent's running work, or all",
        usage="<agent|all>",
        immediate=True,
    )
    async def stop(self, ctx: CommandContext) -> None:
        target = ctx.args.strip().lower()
        if not target:
            await ctx.reply("Usage: /stop <agent|all>")
            return
        if target != "all" and not await self._known(ctx, target):
            return
        stopped = self._runner.stop(None if target == "all" else target)
        self._audit.record(ctx.user, "stop", target, runs=stopped)
        await ctx.reply(f"Stopped {stopped} run(s)." if stopped else "Nothing was running.")

    @command("enable", role=Role.ADMIN, help="switch an agent on", usage="<agent>")
    async def enable(self, ctx: CommandContext) -> None:
        await self._switch(ctx, on=True)

    @command("disable", role=Role.ADMIN, help="switch an agent off", usage="<agent>")
    async def disable(self, ctx: CommandContext) -> None:
        await self._switch(ctx, on=False)

    async def _switch(self, ctx: CommandContext, *, on: bool) -> None:
        name = ctx.args.strip().lower()
        if not await self._known(ctx, name):
            return
        agent = self._roster.set_enabled(name, on)
        self._brakes.reset(agent.name)  # a fresh start for the circuit breaker
        self._audit.record(ctx.user, "agent.enabled" if on else "agent.disabled", agent.name)
        await ctx.reply(f"{agent.name} is {'enabled' if on else 'disabled'}.")

    async def _known(self, ctx: CommandContext, name: str) -> bool:
        try:
            self._roster.get(name)
        except AgentNotFound as exc:
            await ctx.reply(str(exc))
            return False
        return True


def tool_lines(mcp: McpPool, spec: object) -> list[Piece]:
    """An llm agent's tools by source: its own list, then each MCP server's."""
    if not isinstance(spec, LLMAgentSpec):
        return []
    lines: list[Piece] = []
    if spec.tools:
        lines.append(f"  tools: {', '.join(spec.tools)}\n")
    for server in spec.mcp:
        known = [
            name
            for name in sorted(mcp.known(server))
            if not spec.mcp_tools or name in spec.mcp_tools
        ]
        listed = ", ".join(known) or "listed once it starts (first use)"
        lines.append(f"  mcp {server}: {listed}\n")
    return lines
