"""Job rows for scheduler tests: an `echo` job in `test:chat`, made at a given moment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scheduler.plan import TriggerKind
from storage.models import Job


def job(
    job_id: str, spec: str, *, at: datetime, kind: TriggerKind = TriggerKind.INTERVAL, **fields: Any
) -> Job:
    """A job of `kind` (`spec`: seconds, a cron line or an ISO time) created at `at`."""
    return Job(
        id=job_id,
        agent="echo",
        input="tick",
        trigger=kind,
        spec=spec,
        chat_id="test:chat",
        created_by="test:admin",
        active_since=at,
        created_at=at,
        updated_at=at,
        **fields,
    )
