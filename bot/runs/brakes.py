"""The operator's brakes, applied around every run: budgets, the breaker, the run's clock.

The runner asks `Brakes` before a run starts (is a budget spent?), gives the agent a
`LiveRun` that counts spend as model calls report it, and tells `Brakes` how each run
ended (enough failures in a row switch the agent off and tell the admin chat).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.delivery.outbox import ADMIN_SUBJECT
from bot.delivery.postman import Postman
from bot.runs.breaker import Breaker
from bot.runs.budget import ADMINS_DECIDE, Budgets, Overrun, Scope
from bot.runs.progress import Progress
from bot.text import bold, rich
from bot.types import Outgoing
from roster.agent import Decision, NeedsApproval, Usage
from roster.errors import BudgetExceeded
from roster.roster import Roster
from storage.audit import AuditLog
from storage.models import RunState
from storage.runs import ActiveRun

log = logging.getLogger(__name__)

Pricer = Callable[[str, Usage], float]  # (agent, usage) -> money
RecordCall = Callable[[str, str, str, str], None]  # (tool, arguments, result, status)
Stored = Callable[[], Awaitable[None]]  # waits until the run's row is committed
Spawned = Callable[[int], None]  # records the process group a command runs in
Ask = Callable[[NeedsApproval], Awaitable[Decision]]  # a card the live run waits on


class LiveRun:
    """What an agent sees while it runs (`roster.agent.RunContext`)."""

    def __init__(
        self,
        *,
        progress: Progress,
        budgets: Budgets,
        scopes: list[Scope],
        price: Callable[[Usage], float],
        record_call: RecordCall | None = None,
        stored: Stored | None = None,
        spawned: Spawned | None = None,
        ask: Ask | None = None,
    ) -> None:
        self._ask = ask
        self._progress = progress
        self._budgets = budgets
        self._scopes = scopes
        self._price = price
        self._record_call = record_call
        self._stored = stored
        self._spawned = spawned
        self.cost = 0.0
        self.overrun: Overrun | None = None
        self.acted = False  # whether the agent did something that cannot be taken back

    async def progress(self, text: str) -> None:
        await self._progress.progress(text)

    async def stream(self, text: str) -> None:
        await self._progress.stream(text)

    async def before_model_call(self) -> None:
        self.overrun = self._budgets.overrun(self._scopes)
        if self.overrun is not None:
            raise BudgetExceeded(f"Paused: {self.overrun.describe()}. An admin can extend it.")

    def spent(self, usage: Usage) -> None:
        cost = self._price(usage)
        self.cost += cost
        self._budgets.spend(self._scopes, usage.tokens_in + usage.tokens_out, cost)

    def tool_called(self, tool: str, arguments: str, result: str, *, status: str) -> None:
        if self._record_call is not None:
            self._record_call(tool, arguments, result, status)

    async def before_effect(self) -> None:
        if not self.acted and self._stored is not None:
            await self._stored()  # once per run: its row (and the update's) is stored then
        self.acted = True

    def process_started(self, pid: int) -> None:
        if self._spawned is not None:
            self._spawned(pid)

    async def ask(self, gate: NeedsApproval) -> Decision:
        if self._ask is None:
            return Decision(approved=False, by="agentdeck", reason="no one can be asked here")
        return await self._ask(gate)


class Brakes:
    def __init__(
        self,
        *,
        budgets: Budgets,
        breaker: Breaker,
        roster: Roster,
        postman: Postman,
        audit: AuditLog,
        admin_chat: str,
        price: Pricer = lambda _agent, _usage: 0.0,
    ) -> None:
        self.budgets = budgets
        self._breaker = breaker
        self._roster = roster
        self._postman = postman
        self._audit = audit
        self._admin_chat = admin_chat
        self._price = price

    def budget_gate(self, run: ActiveRun) -> NeedsApproval | None:
        """Before a run starts: a spent budget suspends it on an "extend?" card for admins."""
        overrun = self.budgets.overrun(self.budgets.scopes(run.agent, run.chat_id, run.job_id))
        if overrun is None:
            return None
        state = {"stage": "start", "overrun": overrun.describe()}
        return NeedsApproval(action=overrun.extension(run.agent), policy=ADMINS_DECIDE, state=state)

    def extension_gate(self, live: LiveRun, run: ActiveRun) -> NeedsApproval | None:
        """After a run stopped at a spent budget mid-way: the card that would extend it."""
        if live.overrun is None:
            return None
        action = live.overrun.extension(run.agent)
        return NeedsApproval(action=action, policy=ADMINS_DECIDE, state={})

    def live(
        self,
        run: ActiveRun,
        progress: Progress,
        record_call: RecordCall | None = None,
        *,
        stored: Stored | None = None,
        spawned: Spawned | None = None,
        ask: Ask | None = None,
    ) -> LiveRun:
        scopes = self.budgets.scopes(run.agent, run.chat_id, run.job_id)
        return LiveRun(
            progress=progress,
            budgets=self.budgets,
            scopes=scopes,
            price=lambda usage: self._price(run.agent, usage),
            record_call=record_call,
            stored=stored,
            spawned=spawned,
            ask=ask,
        )

    async def after_run(self, run: ActiveRun, status: RunState) -> None:
        """Feed the breaker; at its threshold, switch the agent off and tell the admins."""
        if status not in (RunState.DONE, RunState.FAILED):
            return
        if not self._breaker.record(run.agent, ok=status == RunState.DONE):
            return
        self._roster.set_enabled(run.agent, False)
        self._audit.record("breaker", "agent.disabled", run.agent, reason="consecutive failures")
        text = rich(
            bold(run.agent),
            " failed too many times in a row and was switched off. /enable ",
            run.agent,
            " switches it on again.",
        )
        for chat in {self._admin_chat, run.chat_id} - {""}:
            if self._postman.knows(chat):
                subject = ADMIN_SUBJECT if chat == self._admin_chat else f"breaker:{run.agent}"
                notice = Outgoing(chat=chat, text=text)
                try:
                    await self._postman.keep(f"breaker:{run.id}:{chat}", notice, subject=subject)
                except Exception:
                    log.exception("could not tell %s that the breaker tripped", chat)

    def reset(self, agent: str) -> None:
        self._breaker.reset(agent)
