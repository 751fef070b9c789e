"""The dashboard's URLs, in one place."""

from __future__ import annotations

from aiohttp import web

from bot.dashboard.pages import approvals, audit, cost, jobs, overview, runs, signin


def table() -> list[web.RouteDef]:
    return [
        web.get("/", overview.overview),
        web.get("/runs", runs.runs),
        web.get("/runs/{run_id}", runs.run),
        web.get("/jobs", jobs.jobs),
        web.post(r"/jobs/{job_id}/{verb:pause|resume}", jobs.change),
        web.get("/approvals", approvals.approvals),
        web.post("/approvals/{approval_id}", approvals.decide),
        web.get("/audit", audit.audit),
        web.get("/cost", cost.cost),
        web.get("/signin", signin.signin_page),
        web.post("/signin", signin.signin),
        web.post("/signout", signin.signout),
    ]
