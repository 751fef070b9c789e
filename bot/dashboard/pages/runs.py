"""Runs: a filterable list, and one run with its transcript, tool calls and approvals."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from bot.dashboard.auth import Viewer
from bot.dashboard.web import DECK, page, render
from bot.runs.cards import describe
from roster.agent import Action
from storage import history
from storage.history import RunFilter
from storage.models import RunState

MAX_FILTER_CHARS = 200


@page()
async def runs(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    deck = request.app[DECK]
    wanted, problems = run_filter(request.query, ZoneInfo(deck.config.deck.timezone))
    await deck.runner.flush()
    rows = await history.runs(deck.db, wanted)
    return render(
        request,
        "runs.html",
        viewer,
        rows=rows,
        query=request.query,
        problems=problems,
        agents=deck.roster.names(),
        statuses=[state.value for state in RunState],
        limit=wanted.limit,
    )


@page()
async def run(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    deck = request.app[DECK]
    run_id = request.match_info["run_id"][:32]
    await deck.runner.flush()
    row = await history.run(deck.db, run_id)
    if row is None:
        return render(request, "missing.html", viewer, status=404, what=f"run {run_id}")
    parts = await history.run_parts(deck.db, run_id)
    redact = deck.vault.redact  # secrets stored after the run was written are scrubbed too
    return render(
        request,
        "run.html",
        viewer,
        run=row,
        live=row.id in deck.runner.active(),
        input=redact(row.input),
        output=redact(row.output),
        error=redact(row.error or ""),
        tool_calls=[
            (call, redact(str(call.arguments)), redact(call.result)) for call in parts.tool_calls
        ],
        approvals=[
            (approval, redact(describe(Action.from_json(approval.action))))
            for approval in parts.approvals
        ],
        events=parts.events,
    )


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
