"""Commands about agents: /start /help /agents /ask /stop /enable /disable."""

from __future__ import annotations

from bot import markdown
from bot.commands import command, invites
from bot.commands.context import CommandContext
from bot.config import Role
from bot.deck import Deck
from bot.intake import actions
from bot.intake.welcome import welcome
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound
from roster.spec import LLMAgentSpec


@command(
    "start",
    role=Role.VIEWER,
    help="who I am and what you may do here (`/start <code>` redeems an invite)",
    usage="[code]",
    immediate=True,
    private_args=True,  # an invite code: never stored in the inbox, never echoed on Slack
)
async def start(ctx: CommandContext) -> None:
    """The first thing every Telegram user sends: a welcome that says how to begin."""
    if ctx.args:
        await invites.join(ctx)
        return
    await ctx.reply(*welcome(ctx.deck, ctx.incoming, ctx.role))


@command("help", role=Role.VIEWER, help="what I can do")
async def help_(ctx: CommandContext) -> None:
    lines: list[Piece] = [bold("Commands"), "\n"]
    for spec in sorted(ctx.commands.values(), key=lambda s: s.name):
        if ctx.role.allows(spec.role):
            usage = f" {spec.usage}" if spec.usage else ""
            lines += [code(f"/{spec.name}{usage}"), " ", *markdown.inline(spec.help), "\n"]
    default = actions.agent_for(ctx.deck, ctx.incoming.chat)
    lines += [f"Plain text goes to {default}; ", code("@agent text"), " or /ask picks another."]
    await ctx.reply(*lines)


@command("agents", role=Role.VIEWER, help="the roster and what each agent needs")
async def agents(ctx: CommandContext) -> None:
    lines: list[Piece] = [bold("Agents"), "\n"]
    for agent in ctx.deck.roster:
        reason = ctx.deck.roster.unavailable_reason(agent)
        state = f"unavailable: {reason}" if reason else "ready"
        kind = getattr(agent.spec, "kind", "?")
        sandbox = getattr(agent.spec, "sandbox", None)  # codex: what its commands may touch
        if sandbox is not None:
            kind += f", sandbox {sandbox}"
        lines += [bold(agent.name), f" ({kind}, {state}) {agent.spec.description}\n"]
        lines += tool_lines(ctx.deck, agent.spec)
    await ctx.reply(*lines)


def tool_lines(deck: Deck, spec: object) -> list[Piece]:
    """An llm agent's tools by source: its own list, then each MCP server's."""
    if not isinstance(spec, LLMAgentSpec):
        return []
    lines: list[Piece] = []
    if spec.tools:
        lines.append(f"  tools: {', '.join(spec.tools)}\n")
    for server in spec.mcp:
        known = [
            name
            for name in sorted(deck.mcp.known(server))
            if not spec.mcp_tools or name in spec.mcp_tools
        ]
        listed = ", ".join(known) or "listed once it starts (first use)"
        lines.append(f"  mcp {server}: {listed}\n")
    return lines


@command("ask", role=Role.OPERATOR, help="ask one agent", usage="<agent> <text>", with_agents=True)
async def ask(ctx: CommandContext) -> None:
    name, _, text = ctx.args.partition(" ")
    if not name:
        await ctx.reply("Usage: /ask <agent> <text>. Agents: ", ", ".join(ctx.deck.roster.names()))
        return
    await actions.ask(ctx.deck, ctx.incoming, ctx.role, name, text.strip())


@command(
    "stop",
    role=Role.OPERATOR,
    help="stop an agent's running work, or all",
    usage="<agent|all>",
    immediate=True,
)
async def stop(ctx: CommandContext) -> None:
    target = ctx.args.strip().lower()
    if not target:
        await ctx.reply("Usage: /stop <agent|all>")
        return
    if target != "all" and not await _known(ctx, target):
        return
    stopped = ctx.deck.runner.stop(None if target == "all" else target)
    ctx.deck.audit.record(ctx.user, "stop", target, runs=stopped)
    await ctx.reply(f"Stopped {stopped} run(s)." if stopped else "Nothing was running.")


@command("enable", role=Role.ADMIN, help="switch an agent on", usage="<agent>")
async def enable(ctx: CommandContext) -> None:
    await _switch(ctx, on=True)


@command("disable", role=Role.ADMIN, help="switch an agent off", usage="<agent>")
async def disable(ctx: CommandContext) -> None:
    await _switch(ctx, on=False)


async def _switch(ctx: CommandContext, *, on: bool) -> None:
    name = ctx.args.strip().lower()
    if not await _known(ctx, name):
        return
    agent = ctx.deck.roster.set_enabled(name, on)
    ctx.deck.brakes.reset(agent.name)  # a fresh start for the circuit breaker
    ctx.deck.audit.record(ctx.user, "agent.enabled" if on else "agent.disabled", agent.name)
    await ctx.reply(f"{agent.name} is {'enabled' if on else 'disabled'}.")


async def _known(ctx: CommandContext, name: str) -> bool:
    try:
        ctx.deck.roster.get(name)
    except AgentNotFound as exc:
        await ctx.reply(str(exc))
        return False
    return True
