"""Commands about agents: /start /help /agents /ask /stop /enable /disable."""

from __future__ import annotations

from bot import markdown
from bot.commands import command
from bot.commands.context import CommandContext
from bot.config import Role
from bot.intake import actions
from bot.text import Piece, bold, code
from roster.errors import AgentNotFound


@command("start", role=Role.VIEWER, help="who I am and what you may do here", immediate=True)
async def start(ctx: CommandContext) -> None:
    """The first thing every Telegram user sends: a welcome that says how to begin."""
    deck = ctx.deck
    lines: list[Piece] = [
        "Hello, I am ",
        bold("agentdeck"),
        ", a bot that runs agents for this team. You are ",
        bold(f"{ctx.role.value}"),
        f" here ({ctx.user}).\n",
    ]
    if ctx.role.allows(Role.OPERATOR):
        usable = [a.name for a in deck.roster if deck.roster.unavailable_reason(a) is None]
        default = actions.agent_for(deck, ctx.incoming.chat)
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
    await ctx.reply(*lines)


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
        lines += [bold(agent.name), f" ({kind}, {state}) {agent.spec.description}\n"]
    await ctx.reply(*lines)


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
