"""Jobs: what is scheduled and when it runs next, what ran, pause and resume."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot.commands.jobs import SCHEDULER_OFF
from bot.config import Role
from bot.dashboard.auth import Viewer
from bot.dashboard.web import action, page, render, see_other
from bot.jobruns import report_target
from bot.runs.runner import Runner
from scheduler.errors import SchedulerError
from scheduler.service import Scheduler, plan_of
from storage import history
from storage.audit import AuditLog
from storage.db import Database
from storage.models import Job

CHANGES = {"pause": ("paused", Scheduler.pause), "resume": ("resumed", Scheduler.resume)}


@dataclass(frozen=True, slots=True)
class Parts:
    """What the jobs page uses."""

    scheduler: Scheduler | None
    runner: Runner
    db: Database
    audit: AuditLog


PARTS = web.AppKey("jobs", Parts)


@dataclass(frozen=True, slots=True)
class JobRow:
    job: Job
    plan: str
    reports_to: str


@page()
async def jobs(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    parts = request.app[PARTS]
    scheduler = parts.scheduler
    if scheduler is None:
        return render(request, "jobs.html", viewer, off=SCHEDULER_OFF)
    listed, total = await scheduler.store.listed(limit=200)
    await parts.runner.flush()
    return render(
        request,
        "jobs.html",
        viewer,
        off="",
        scheduler_status=await scheduler.status(),
        jobs=[_row(job) for job in listed],
        total=total,
        next_runs=[_row(job) for job in await scheduler.store.next_runs(10)],
        history=await history.job_runs(parts.db, 50),
        can_change=viewer.may(Role.ADMIN),
    )


@action(Role.ADMIN)
async def change(request: web.Request, viewer: Viewer, form: dict[str, str]) -> web.StreamResponse:
    """POST /jobs/{job_id}/{pause|resume}: the same change and audit as the chat command."""
    parts = request.app[PARTS]
    job_id = request.match_info["job_id"][:32]
    done, move = CHANGES[request.match_info["verb"]]
    if parts.scheduler is None:
        see_other(request, viewer, "/jobs", SCHEDULER_OFF)
    try:
        job = await move(parts.scheduler, job_id)
    except SchedulerError as exc:
        parts.audit.record(viewer.user, "dashboard.refused", job_id, reason=str(exc))
        see_other(request, viewer, "/jobs", str(exc))
    parts.audit.record(viewer.user, f"job.{done}", job_id, via="dashboard")
    see_other(request, viewer, "/jobs", f"Job {job.id} {done}.")


def _row(job: Job) -> JobRow:
    chat, thread = report_target(job)
    return JobRow(job, plan_of(job).describe(), chat + (f" (thread {thread})" if thread else ""))
