"""Commands that look: /status /runs."""

from __future__ import annotations

from bot.commands import command
from bot.commands.context import CommandContext
from bot.commands.jobs import scheduler_lines
from bot.config import Role
from bot.delivery.transport_links import LinkState, TransportLinks
from bot.text import Piece, bold, code
from storage.runs import RunStore


@command("status", role=Role.VIEWER, help="what is running and waiting", immediate=True)
async def status(ctx: CommandContext) -> None:
    deck = ctx.deck
    active = deck.runner.active()
    pending = await deck.approvals.pending()
    up = deck.clock.now() - deck.started_at
    lines: list[Piece] = [bold("Status"), f" · up {str(up).split('.')[0]}\n"]
    lines.append(
        f"Running: {', '.join(sorted(set(active.values()))) or 'nothing'} ({len(active)} run(s))\n"
    )
    lines.append(f"Waiting for approval: {len(pending)}\n")
    ready = [a.name for a in deck.roster if not deck.roster.unavailable_reason(a)]
    lines.append(f"Agents ready: {', '.join(ready) or 'none'}\n")
    lines.append(f"Database: {deck.db.display_url}")
    lines += transport_lines(deck.links)
    lines += await scheduler_lines(deck.scheduler, deck.clock)
    await ctx.reply(*lines)


def transport_lines(links: TransportLinks) -> list[Piece]:
    """Each transport: up, or retrying since when, with the last error and the next try."""
    shown = []
    for link in links.all():
        if link.state is LinkState.UP:
            shown.append(f"{link.name} up")
            continue
        since = f"{link.since:%H:%M:%S}" if link.since else "?"
        upcoming = f"{link.next_attempt:%H:%M:%S}" if link.next_attempt else "soon"
        shown.append(
            f"{link.name} retrying since {since} UTC ({link.attempts} failed retries; "
            f"last error: {link.last_error[:200]}; next attempt {upcoming} UTC)"
        )
    return [f"\nTransports: {'; '.join(shown) or 'none'}"]


@command("runs", role=Role.VIEWER, help="recent runs", usage="[agent]")
async def runs(ctx: CommandContext) -> None:
    await ctx.deck.runner.flush()
    rows = await RunStore(ctx.deck.db).recent(ctx.args.strip().lower() or None)
    if not rows:
        await ctx.reply("No runs yet.")
        return
    lines: list[Piece] = [bold("Recent runs"), "\n"]
    for run in rows:
        took = (
            f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
            if run.finished_at
            else "…"
        )
        tokens = (
            f" · {run.tokens_in}+{run.tokens_out} tok" if run.tokens_in or run.tokens_out else ""
        )
        cost = f" · ${run.cost:.4f}" if run.cost else ""
        lines += [
            code(run.id[:8]),
            f" {run.agent} {run.status} {took}{tokens}{cost} · {run.input[:60]}\n",
        ]
    await ctx.reply(*lines)
