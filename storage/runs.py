"""Run rows read back: a run to resume, recent runs, today's spend, runs a crash cut short."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, col, select, update

from storage.db import Database
from storage.models import Run, RunState
from storage.processes import Processes


@dataclass(slots=True)
class ActiveRun:
    """A run as this process works on it: what the runner and its helpers read and change.

    A plain object, not the `Run` table model: building one of those (its attribute
    instrumentation) cost a tenth of a millisecond or more per message, on the loop.
    """

    id: str
    agent: str
    chat_id: str
    thread_id: str | None
    user_id: str
    job_id: str | None
    input: str
    started_at: datetime
    owner: str | None
    status: RunState = RunState.RUNNING
    state: dict[str, Any] = field(default_factory=dict)
    hops: tuple[str, ...] = ()  # the delegation chain before this run's agent
    # The message as typed, secrets' values and all: what the agent runs with. Only in
    # memory; `input` is what is stored and shown (scrubbed).
    text: str = ""
    update_key: str | None = None  # the update that started it (chat runs)
    # The insert of its row, queued: it must have succeeded before the run may act.
    row_written: Awaitable[object] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, run: Run, unseal: Callable[[Any], Any] = lambda state: state) -> ActiveRun:
        """The run a stored row describes; `unseal` puts the values of secrets back into
        a waiting run's state (`Scrubber.unseal`), for the agent to go on with."""
        state = unseal(dict(run.state))
        hops = tuple(state.pop(HOPS_KEY, ()))
        text = state.pop(TEXT_KEY, run.input)
        return cls(
            id=run.id,
            agent=run.agent,
            chat_id=run.chat_id,
            thread_id=run.thread_id,
            user_id=run.user_id,
            job_id=run.job_id,
            input=run.input,
            started_at=run.started_at,
            owner=run.owner,
            status=run.status,
            state=state,
            hops=hops,
            text=text,
            update_key=run.update_key,
        )

    def suspended_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The agent's state as stored while waiting: with the chain, so the cycle and
        hop checks of a delegated run still hold once it resumes (here or after a restart),
        and with the message as typed where it differs from the scrubbed `input` (the
        runner seals it before it is stored)."""
        stored = {**state, HOPS_KEY: list(self.hops)} if self.hops else dict(state)
        if self.text != self.input:
            stored[TEXT_KEY] = self.text
        return stored

    def row(self) -> dict[str, Any]:
        """The `runs` row it starts as (every column: one shape for every run insert)."""
        return {
            "id": self.id,
            "agent": self.agent,
            "chat_id": self.chat_id,
            "thread_id": self.thread_id,
            "user_id": self.user_id,
            "job_id": self.job_id,
            "input": self.input,
            "output": "",
            "status": self.status,
            "error": None,
            "exit_code": None,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost": 0.0,
            "delivered": False,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": None,
            "owner": self.owner,
            "update_key": self.update_key,
            "process_group": None,
            "process_started": None,
            "process_host": None,
        }


HOPS_KEY = "_hops"  # in a waiting run's stored state; taken out again before the agent sees it
TEXT_KEY = "_text"  # likewise: the message as typed, sealed (values kept by reference)

KEYS_PER_QUERY = 500

SPEND_KEYS = {"agent": Run.agent, "chat": Run.chat_id, "job": Run.job_id}


class RunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, run_id: str) -> Run | None:
        async with self._db.session() as session:
            return await session.get(Run, run_id)

    async def recent(self, agent: str | None = None, limit: int = 10) -> Sequence[Run]:
        query = select(Run).order_by(col(Run.started_at).desc()).limit(limit)
        if agent:
            query = query.where(Run.agent == agent)
        async with self._db.session() as session:
            return (await session.exec(query)).all()

    async def spend_since(self, since: datetime) -> list[tuple[str, str, int, float]]:
        """(kind, name, tokens, cost) per agent, chat and job, for runs started since then."""
        rows: list[tuple[str, str, int, float]] = []
        async with self._db.session() as session:
            for kind, column in SPEND_KEYS.items():
                query = (
                    select(column, func.sum(Run.tokens_in + Run.tokens_out), func.sum(Run.cost))
                    .where(col(Run.started_at) >= since)
                    .group_by(column)
                )
                for name, tokens, cost in (await session.exec(query)).all():
                    if name:
                        rows.append((kind, name, int(tokens or 0), float(cost or 0)))
        return rows

    async def left_running(self, processes: Processes) -> list[Run]:
        """Runs still marked running by a process that is gone (never a live one's)."""
        query = select(Run).where(
            col(Run.status) == RunState.RUNNING, processes.orphaned(col(Run.owner))
        )
        async with self._db.session() as session:
            return list((await session.exec(query)).all())

    async def interrupt(
        self,
        ids: Sequence[str],
        processes: Processes,
        now: datetime,
        with_each: Callable[[Run], Sequence[SQLModel]],
    ) -> list[Run]:
        """Mark these runs interrupted if they are still running and still orphaned, and
        store `with_each(run)` in the same transaction (what reports it). Each row is
        marked, and so reported, by one process."""
        statement = (
            update(Run)
            .where(
                col(Run.id).in_(ids),
                col(Run.status) == RunState.RUNNING,
                processes.orphaned(col(Run.owner)),
            )
            .values(status=RunState.INTERRUPTED, finished_at=now)
            .returning(Run)
        )
        async with self._db.write_session() as session:
            rows = list((await session.exec(statement)).scalars())
            for row in rows:
                session.add_all(with_each(row))
            await session.commit()
        return rows

    async def claim_waiting(self, run_id: str, owner: str) -> Run | None:
        """Take a waiting run to resume it here: one taker, whoever asks at the same time.
        Returns the run as it waited (its stored state), or None if it was not waiting."""
        async with self._db.session() as session:
            run = await session.get(Run, run_id)
        if run is None or run.status != RunState.WAITING:
            return None
        statement = (
            update(Run)
            .where(col(Run.id) == run_id, col(Run.status) == RunState.WAITING)
            .values(status=RunState.RUNNING, state={}, owner=owner)
        )
        async with self._db.write_session() as session:
            taken = (await session.exec(statement)).rowcount == 1
            await session.commit()
        return run if taken else None

    async def started(self, update_keys: Sequence[str]) -> set[str]:
        """Which of these updates started a run (those are never handled again)."""
        found: set[str] = set()
        async with self._db.session() as session:
            for start in range(0, len(update_keys), KEYS_PER_QUERY):
                chunk = update_keys[start : start + KEYS_PER_QUERY]
                query = select(Run.update_key).where(col(Run.update_key).in_(chunk)).distinct()
                found.update(key for key in (await session.exec(query)).all() if key is not None)
        return found
