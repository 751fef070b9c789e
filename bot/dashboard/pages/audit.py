"""Audit: the trail, filtered, and whether its hash chain still holds."""

from __future__ import annotations

from aiohttp import web

from bot.config import Role
from bot.dashboard.auth import Viewer
from bot.dashboard.web import DECK, page, render
from storage import history
from storage.history import AuditFilter

PAGE_SIZE = 100
MAX_FILTER_CHARS = 200


@page(Role.ADMIN)  # as /audit in chat
async def audit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    deck = request.app[DECK]
    query = request.query
    before = query.get("before", "")
    wanted = AuditFilter(
        actor=query.get("actor", "")[:MAX_FILTER_CHARS].strip(),
        action=query.get("action", "")[:MAX_FILTER_CHARS].strip(),
        subject=query.get("subject", "")[:MAX_FILTER_CHARS].strip(),
        before_id=int(before) if before.isdigit() else None,
        limit=PAGE_SIZE,
    )
    await deck.runner.flush()
    events = await history.audit_events(deck.db, wanted)
    broken = (await deck.audit.verify()).broken
    older = events[-1].id if len(events) == PAGE_SIZE else None
    return render(
        request,
        "audit.html",
        viewer,
        events=events,
        broken=broken,
        query=query,
        older=older,
        filters={k: v for k, v in query.items() if k != "before"},
    )
