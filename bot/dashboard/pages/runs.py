"""Runs: a filterable list, paged, and one run with its transcript, tool calls and approvals.

A run is found by its full id or by a prefix of it (the list shows the first 8
characters); a prefix several runs share lists them. A filter that does not parse is
named on the page and nothing is listed: an empty page is wrong less quietly than
showing every run as if the filter had held.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup
from multidict import MultiMapping

from bot import markdown
from bot.config import CurrentConfig
from bot.dashboard.auth import Viewer
from bot.dashboard.web import page, render, rich_html
from bot.runs.cards import describe
from bot.runs.runner import Runner
from roster.agent import Action
from roster.errors import AgentNotFound
from roster.roster import Roster
from storage import history
from storage.db import Database
from storage.history import RunFilter
from storage.models import RunState

MAX_FILTER_CHARS = 200
PAGE_SIZE = 100
# What a typed run id may hold; anything else is no run of ours (and no LIKE pattern).
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_PREFIX_CHARS = 4
SHOWN_MATCHES = 10


@dataclass(frozen=True, slots=True)
class Parts:
    """What the runs pages use."""

    config: CurrentConfig
    runner: Runner
    db: Database
    roster: Roster
    redact: Callable[[str], str]


PARTS = web.AppKey("runs", Parts)


@page()
async def runs(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    await parts.runner.flush()
    wanted, problems = run_filter(request.query, ZoneInfo(parts.config().deck.timezone))
    wanted, before_problem = await _paged(parts.db, wanted, request.query.get("before", ""))
    problems += before_problem
    rows = [] if problems else await history.runs(parts.db, wanted)
    older = rows[-1].id if len(rows) == wanted.limit else None
    return render(
        request,
        "runs.html",
        viewer,
        status=400 if problems else 200,
        rows=rows,
        query=request.query,
        problems=problems,
        agents=parts.roster.names(),
        statuses=[state.value for state in RunState],
        limit=wanted.limit,
        older=older,
        paged=wanted.before is not None,
        filters={k: v for k, v in request.query.items() if k != "before"},
    )


async def _paged(db: Database, wanted: RunFilter, before: str) -> tuple[RunFilter, list[str]]:
    """The filter from `before=<run id>` on: the page after the one that ended there."""
    if not before:
        return wanted, []
    row = await history.run(db, before) if RUN_ID.fullmatch(before) else None
    if row is None:
        return wanted, [f"before: no run {before[:40]!r} to page from"]
    return dataclasses.replace(wanted, before=row), []


@page()
async def run(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    run_id = request.match_info["run_id"]
    await parts.runner.flush()
    row = await history.run(parts.db, run_id) if RUN_ID.fullmatch(run_id) else None
    if row is None:
        return await _by_prefix(request, viewer, run_id)
    shown = await history.run_parts(parts.db, run_id)
    redact = parts.redact  # secrets stored after the run was written are scrubbed too
    return render(
        request,
        "run.html",
        viewer,
        run=row,
        live=row.id in parts.runner.active(),
        input=redact(row.input),
        output=redact(row.output),
        output_html=_as_markdown(parts, row.agent, redact(row.output)),
        error=redact(row.error or ""),
        tool_calls=[
            (call, redact(str(call.arguments)), redact(call.result)) for call in shown.tool_calls
        ],
        approvals=[
            (approval, redact(describe(Action.from_json(approval.action))))
            for approval in shown.approvals
        ],
        events=shown.events,
        attachments=shown.attachments,
        attachments_days=parts.config().deck.attachments_days,
    )


def _as_markdown(parts: Parts, agent: str, output: str) -> Markup | None:
    """An agent's Markdown output as safe HTML (as the chat shows it); None for an agent
    whose output is plain text, or one no longer in the roster (shown as it was)."""
    try:
        spec = parts.roster.get(agent).spec
    except AgentNotFound:
        return None
    return rich_html(markdown.to_rich(output)) if spec.renders_markdown and output else None


async def _by_prefix(request: web.Request, viewer: Viewer, prefix: str) -> web.StreamResponse:
    """A run id shortened as the lists show it: one match opens it, several are listed."""
    parts = request.app[PARTS]
    usable = len(prefix) >= MIN_PREFIX_CHARS and RUN_ID.fullmatch(prefix)
    matches = await history.runs_with_prefix(parts.db, prefix, SHOWN_MATCHES) if usable else []
    if not matches:
        return render(request, "missing.html", viewer, status=404, what=f"run {prefix[:40]!r}")
    if len(matches) == 1:
        raise web.HTTPFound(f"/runs/{matches[0].id}")
    return render(request, "ambiguous.html", viewer, status=300, prefix=prefix, rows=matches)


def run_filter(query: MultiMapping[str], zone: ZoneInfo) -> tuple[RunFilter, list[str]]:
    """The filter a query string asks for; parts that do not parse are named, not fatal."""
    problems: list[str] = []
    status = query.get("status", "")
    if status and status not in RunState.__members__.values():
        problems.append(f"status: no such state {status[:40]!r}")
        status = ""
    since = _day(query.get("since", ""), "since", zone, problems)
    until = _day(query.get("until", ""), "until", zone, problems)
    wanted = RunFilter(
        agent=query.get("agent", "")[:MAX_FILTER_CHARS].strip().lower(),
        status=RunState(status) if status else None,
        chat=query.get("chat", "")[:MAX_FILTER_CHARS].strip(),
        since=since,
        until=until + timedelta(days=1) if until else None,  # through the end of that day
        limit=PAGE_SIZE,
    )
    return wanted, problems


def _day(raw: str, name: str, zone: ZoneInfo, problems: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw[:10]), time(), tzinfo=zone)
    except ValueError:
        problems.append(f"{name}: not a date (YYYY-MM-DD)")
        return None
