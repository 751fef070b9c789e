"""Claims written in bulk: two statements per batch, however many rows it holds.

A thousand jobs falling due at one second must not cost a thousand statements, nor
a thousand rows run through SQLAlchemy's per-value type processing in the event
loop's thread (measured: ~35 ms of the loop's CPU per 1,000 claims). The rows travel
as one JSON parameter and the database unpacks them itself (`json_each` on SQLite,
`jsonb_to_recordset` on PostgreSQL), in the driver's thread or server. Times are
written exactly as SQLAlchemy writes these columns, so keys and comparisons match
the rows it wrote. (SQLite needs 3.33 for UPDATE ... FROM.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.types import UTCDateTime

if TYPE_CHECKING:
    from storage.jobs import Claim

_NOW = bindparam("now", type_=UTCDateTime())

# "WHERE true": without it SQLite would read ON CONFLICT as a join's ON.
_SQLITE_INSERT = text("""
INSERT INTO job_fires (job_id, scheduled_for, kind, missed, run_id, claimed_by, claimed_at)
SELECT json_extract(value, '$.job_id'), json_extract(value, '$.at'),
    json_extract(value, '$.kind'), json_extract(value, '$.missed'),
    json_extract(value, '$.run_id'), :holder, :now
FROM json_each(:rows) WHERE true
ON CONFLICT DO NOTHING
RETURNING job_id, scheduled_for""").bindparams(_NOW)

_PG_INSERT = text("""
INSERT INTO job_fires (job_id, scheduled_for, kind, missed, run_id, claimed_by, claimed_at)
SELECT r.job_id, r.at, r.kind, r.missed, r.run_id, CAST(:holder AS text),
    CAST(:now AS timestamptz)
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(job_id text, at timestamptz, kind text, missed int, run_id text)
ON CONFLICT DO NOTHING
RETURNING job_id, scheduled_for""").bindparams(_NOW)

# last_run_at never moves backwards; a job without a next run is done.
_SQLITE_ADVANCE = text("""
UPDATE jobs SET last_run_at = r.last, next_run_at = r.next,
    state = CASE WHEN r.next IS NULL THEN 'done' ELSE jobs.state END
FROM (SELECT json_extract(value, '$.job_id') AS job_id,
    json_extract(value, '$.last') AS last, json_extract(value, '$.next') AS next
    FROM json_each(:rows)) AS r
WHERE jobs.id = r.job_id AND (jobs.last_run_at IS NULL OR jobs.last_run_at < r.last)""")

_PG_ADVANCE = text("""
UPDATE jobs SET last_run_at = r.last, next_run_at = r.next,
    state = CASE WHEN r.next IS NULL THEN 'done' ELSE jobs.state END
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(job_id text, last timestamptz, next timestamptz)
WHERE jobs.id = r.job_id AND (jobs.last_run_at IS NULL OR jobs.last_run_at < r.last)""")


class _Stamps:
    """Times in the form this database stores them (memoised: a batch shares a few)."""

    def __init__(self, dialect: Dialect) -> None:
        self._sqlite = dialect.name == "sqlite"
        column = UTCDateTime()
        self._store: Callable[[Any], Any] | None = column.dialect_impl(dialect).bind_processor(
            dialect
        )
        self._seen: dict[datetime, str] = {}

    def __call__(self, moment: datetime | str | None) -> str | None:
        if moment is None or isinstance(moment, str):
            return moment
        found = self._seen.get(moment)
        if found is None:
            found = self._seen[moment] = self._format(moment)
        return found

    def _format(self, moment: datetime) -> str:
        if self._sqlite and self._store is not None:
            return str(self._store(moment))
        return moment.astimezone(UTC).isoformat()


async def insert_fires(
    connection: AsyncConnection, claims: Sequence[Claim], holder: str, now: datetime
) -> list[Claim]:
    """Insert the claims' rows; return the claims whose row was new (the ones won)."""
    stamps = _Stamps(connection.dialect)
    rows = [
        {
            "job_id": c.job_id,
            "at": stamps(c.scheduled_for),
            "kind": str(c.kind),
            "missed": c.missed,
            "run_id": c.run_id,
        }
        for c in claims
    ]
    insert = _SQLITE_INSERT if connection.dialect.name == "sqlite" else _PG_INSERT
    result = await connection.execute(
        insert, {"rows": json.dumps(rows), "holder": holder, "now": now}
    )
    won = {(job_id, stamps(at)) for job_id, at in result}
    return [c for c, row in zip(claims, rows, strict=True) if (c.job_id, row["at"]) in won]


async def advance_jobs(connection: AsyncConnection, claims: Sequence[Claim]) -> None:
    """Move each job's last run to its claim (never backwards) and set its next run."""
    if not claims:
        return
    stamps = _Stamps(connection.dialect)
    rows = [
        {"job_id": c.job_id, "last": stamps(c.scheduled_for), "next": stamps(c.next_run_at)}
        for c in claims
    ]
    advance = _SQLITE_ADVANCE if connection.dialect.name == "sqlite" else _PG_ADVANCE
    await connection.execute(advance, {"rows": json.dumps(rows)})


# Only rows still waiting for their due instant, and only the claimer's own: a fire
# another process took over is that process's to settle. The rows returned are the
# ones marked, whose runs may start (the reown UPDATE and this one lock the row, so
# exactly one of them takes it).
_SQLITE_SETTLE = text("""
UPDATE job_fires SET kind = r.kind, run_id = r.run_id, missed = r.missed
FROM (SELECT json_extract(value, '$.job_id') AS job_id, json_extract(value, '$.at') AS at,
    json_extract(value, '$.kind') AS kind, json_extract(value, '$.run_id') AS run_id,
    json_extract(value, '$.missed') AS missed
    FROM json_each(:rows)) AS r
WHERE job_fires.job_id = r.job_id AND job_fires.scheduled_for = r.at
    AND job_fires.kind = 'ahead' AND job_fires.claimed_by = :holder
RETURNING job_fires.job_id, job_fires.scheduled_for""")

_PG_SETTLE = text("""
UPDATE job_fires SET kind = r.kind, run_id = r.run_id, missed = r.missed
FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(job_id text, at timestamptz, kind text, run_id text, missed int)
WHERE job_fires.job_id = r.job_id AND job_fires.scheduled_for = r.at
    AND job_fires.kind = 'ahead' AND job_fires.claimed_by = CAST(:holder AS text)
RETURNING job_fires.job_id, job_fires.scheduled_for""")


async def settle_fires(
    connection: AsyncConnection, claims: Sequence[Claim], holder: str
) -> list[Claim]:
    """Record what became of runs claimed ahead (handed over, busy, or withdrawn);
    return the claims whose row this marked (still `ahead` and still the holder's)."""
    if not claims:
        return []
    stamps = _Stamps(connection.dialect)
    rows = [
        {
            "job_id": c.job_id,
            "at": stamps(c.scheduled_for),
            "kind": str(c.kind),
            "run_id": c.run_id,
            "missed": c.missed,
        }
        for c in claims
    ]
    settle = _SQLITE_SETTLE if connection.dialect.name == "sqlite" else _PG_SETTLE
    result = await connection.execute(settle, {"rows": json.dumps(rows), "holder": holder})
    marked = {(job_id, stamps(at)) for job_id, at in result}
    return [c for c, row in zip(claims, rows, strict=True) if (c.job_id, row["at"]) in marked]
