"""The jobs the leader has scheduled: each with its plan and trigger, and its version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apscheduler.triggers.base import BaseTrigger

from scheduler.plan import Plan, TriggerKind
from storage.models import Job


@dataclass(slots=True)
class LoadedJob:
    job: Job
    plan: Plan
    trigger: BaseTrigger
    key: str  # equal for jobs whose triggers fire at the same times


@dataclass(frozen=True, slots=True)
class DueEntry:
    next_run: datetime
    job_id: str
    loaded: LoadedJob


def plan_of(job: Job) -> Plan:
    return Plan(TriggerKind(job.trigger), job.spec, job.timezone)


class LoadedJobs:
    """What this process schedules while it leads; emptied when it steps down."""

    def __init__(self) -> None:
        self.jobs: dict[str, LoadedJob] = {}
        self.versions: dict[str, int] = {}  # the version of each job last scheduled

    def remember(self, job: Job) -> LoadedJob:
        plan = plan_of(job)
        loaded = LoadedJob(job, plan, plan.trigger(job.created_at), plan.key(job.created_at))
        self.jobs[job.id] = loaded
        self.versions[job.id] = job.version
        return loaded

    def clear(self) -> None:
        self.jobs.clear()
        self.versions.clear()
