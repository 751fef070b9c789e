"""Runs a crash cut short: their processes stopped, each reported once, with Run again.

A run still marked `running` whose process is gone (`storage.processes`) was cut short.
It may have acted already, so the update that started it is never handled again
(`storage.inbox`). Instead, at the next start (or by a live process that sees its
owner's heartbeat stop):

1. its command's process group, if it still runs on this host, is stopped
   (`bot.runs.orphans`: SIGTERM, SIGKILL after the grace);
2. it is marked interrupted and, in the same transaction, a Run again offer is stored:
   a new run, waiting, with the same input, and an approval whose card is the report;
3. the card is posted. A crash before that leaves a pending approval with no card,
   which the next start posts (`bot.recovery.repost_lost_cards`): the report is not lost,
   and it is made once (the mark is a compare-and-set on `running`).

A press on Run again is an approval like any other: the agent's approvers, quorum,
self-approval rule and expiry apply, it is audited, and it is taken once; it starts the
waiting run, so nothing runs again unless someone allowed to decide says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from bot.delivery.postman import Postman
from bot.runs.approvals import Approvals, new_approval
from bot.runs.cards import LEFT_SAID, RERUN_OF, RUN_AGAIN
from bot.runs.orphans import Left, stop_left
from bot.text import bold, rich
from bot.types import Outgoing
from roster.agent import Action, AgentRequest, NeedsApproval
from roster.children import KILL_GRACE_SECONDS
from roster.errors import RosterError
from roster.roster import Roster
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.models import Approval, Run, RunState
from storage.processes import Processes
from storage.runs import ActiveRun, RunStore

SHOWN_INPUT_CHARS = 80


@dataclass(frozen=True, slots=True)
class Cut:
    """A run a crash cut short, what became of its processes, and its Run again offer."""

    run: Run
    left: Left
    offer: Approval | None  # None when its agent is gone from the roster


async def take_over(
    processes: Processes, *, db: Database, clock: Clock, roster: Roster, audit: AuditLog
) -> list[Cut]:
    """Stop what dead processes' runs left running, mark those runs, store their offers."""
    store = RunStore(db)
    candidates = await store.left_running(processes)
    if not candidates:
        return []
    stopping = [
        stop_left(run.process_group, run.process_started, run.process_host, KILL_GRACE_SECONDS)
        for run in candidates
    ]
    left = dict(zip((run.id for run in candidates), await asyncio.gather(*stopping), strict=True))
    now = clock.now()
    offers: dict[str, Approval] = {}

    def with_each(run: Run) -> list[Run | Approval]:
        rows = offer_rows(roster, run, left[run.id], now)
        if rows is None:
            return []
        offers[run.id] = rows[1]
        return list(rows)

    runs = await store.interrupt([run.id for run in candidates], processes, now, with_each)
    cuts = [Cut(run, left[run.id], offers.get(run.id)) for run in runs]
    for cut in cuts:
        run, offer = cut.run, cut.offer
        audit.record("agentdeck", "run.interrupted", run.id, agent=run.agent, processes=cut.left)
        if offer is not None:
            audit.record(
                run.user_id, "approval.requested", offer.id, agent=run.agent, action=offer.action
            )
    return cuts


def offer_rows(roster: Roster, run: Run, left: Left, now: datetime) -> tuple[Run, Approval] | None:
    """The waiting run that would run `run` again, and the approval that starts it.

    Where the agent asks approval before it starts (a command outside its `allow`
    rules), the offer is that approval: one press, not two.
    """
    try:
        agent = roster.get(run.agent)
        rerun_id = uuid.uuid4().hex
        request = AgentRequest(rerun_id, run.chat_id, run.user_id, run.input, thread=run.thread_id)
        gate = agent.gate(request)
    except RosterError:  # gone from the roster, or its input no longer makes a command
        return None
    if gate is None:
        action = Action(agent=agent.name, kind=RUN_AGAIN, arguments={"input": run.input})
        gate = NeedsApproval(action=action, policy=agent.spec.policy, state={"stage": "start"})
    waiting = ActiveRun(
        id=rerun_id,
        agent=agent.name,
        chat_id=run.chat_id,
        thread_id=run.thread_id,
        user_id=run.user_id,
        job_id=None,  # a run again is asked for in chat, not fired by the job
        input=run.input,
        started_at=now,
        owner=None,
        status=RunState.WAITING,
        state={**gate.state, RERUN_OF: run.id},
    )
    approval = new_approval(waiting, gate, now)
    approval.card = {RERUN_OF: run.id, "input": run.input[:SHOWN_INPUT_CHARS], "left": left}
    return Run(**waiting.row()), approval


async def report(cuts: list[Cut], *, postman: Postman, approvals: Approvals) -> set[str]:
    """Post each cut run's card (or, with no offer, a notice); the offers' ids posted."""
    posted: set[str] = set()
    for cut in cuts:
        if not postman.knows(cut.run.chat_id):
            continue
        if cut.offer is not None:
            await approvals.post_card(cut.offer)
            posted.add(cut.offer.id)
            continue
        said = LEFT_SAID[cut.left].format(input=cut.run.input[:SHOWN_INPUT_CHARS])
        text = rich(bold(cut.run.agent), ": this run was interrupted by a restart", said)
        notice = Outgoing(chat=cut.run.chat_id, thread=cut.run.thread_id, text=text)
        with contextlib.suppress(Exception):
            await postman.send(notice)
    return posted


def describe(cuts: list[Cut]) -> str:
    """`2 (sleeper 1a2b3c4d, ops 5e6f7a8b; 1 stopped)`: how many, which, processes stopped."""
    if not cuts:
        return "0"
    names = ", ".join(f"{cut.run.agent} {cut.run.id[:8]}" for cut in cuts)
    stopped = sum(cut.left is Left.STOPPED for cut in cuts)
    return f"{len(cuts)} ({names}; processes stopped: {stopped})"
