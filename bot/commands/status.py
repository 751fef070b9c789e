"""Commands that look: /status /runs."""

from __future__ import annotations

from datetime import datetime

from bot.commands import command
from bot.commands.jobs import scheduler_lines
from bot.config import Role
from bot.delivery.transport_links import LinkState, TransportLinks
from bot.intake.command_spec import CommandContext
from bot.runs.approvals import Approvals
from bot.runs.runner import Runner
from bot.text import Piece, bold, code
from roster.roster import Roster
from scheduler.service import Scheduler
from storage.clock import Clock
from storage.db import Database
from storage.runs import RunStore


class StatusCommands:
    """What is running and waiting, and recent runs."""

    def __init__(
        self,
        *,
        runner: Runner,
        approvals: Approvals,
        clock: Clock,
        started_at: datetime,
        roster: Roster,
        db: Database,
        links: TransportLinks,
        scheduler: Scheduler | None,
    ) -> None:
        self._runner = runner
        self._approvals = approvals
        self._clock = clock
        self._started_at = started_at
        self._roster = roster
        self._db = db
        self._links = links
        self._scheduler = scheduler

    @command("status", role=Role.VIEWER, help="what is running and waiting", immediate=True)
    async def status(self, ctx: CommandContext) -> None:
        active = self._runner.active()
        pending = await self._approvals.pending()
        up = self._clock.now() - self._started_at
        lines: list[Piece] = [bold("Status"), f" · up {str(up).split('.')[0]}\n"]
        running = ", ".join(sorted(set(active.values()))) or "nothing"
        lines.append(f"Running: {running} ({len(active)} run(s))\n")
        lines.append(f"Waiting for approval: {len(pending)}\n")
        ready = [a.name for a in self._roster if not self._roster.unavailable_reason(a)]
        lines.append(f"Agents ready: {', '.join(ready) or 'none'}\n")
        lines.append(f"Database: {self._db.display_url}")
        lines += transport_lines(self._links)
        lines += await scheduler_lines(self._scheduler, self._clock)
        await ctx.reply(*lines)

    @command("runs", role=Role.VIEWER, help="recent runs", usage="[agent]")
    async def runs(self, ctx: CommandContext) -> None:
        await self._runner.flush()
        rows = await RunStore(self._db).recent(ctx.args.strip().lower() or None)
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
                f" · {run.tokens_in}+{run.tokens_out} tok"
                if run.tokens_in or run.tokens_out
                else ""
            )
            cost = f" · ${run.cost:.4f}" if run.cost else ""
            lines += [
                code(run.id[:8]),
                f" {run.agent} {run.status} {took}{tokens}{cost} · {run.input[:60]}\n",
            ]
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
