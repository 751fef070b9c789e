"""Daily budgets in tokens and money, per agent, chat and job, checked before model calls.

Spend is counted in memory as each model call reports it (so a long run is stopped
mid-way), seeded at start from today's runs. An admin extends a spent budget by
approving an "extend" card; approved extensions are approval rows, so they survive
restarts like everything else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time

from bot.config import BudgetEntry
from roster.agent import Action
from roster.spec import Policy
from storage.approvals import ApprovalStore
from storage.clock import Clock
from storage.db import Database
from storage.runs import RunStore

Scope = tuple[str, str]  # ("agent" | "chat" | "job", name)


@dataclass(slots=True)
class Spend:
    tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class Overrun:
    """A budget that is spent, and the extension an admin may approve."""

    entry: BudgetEntry
    spent: Spend

    def describe(self) -> str:
        kind, name = self.entry.scope
        caps = []
        if self.entry.daily_tokens is not None:
            caps.append(f"{self.spent.tokens:,} of {self.entry.daily_tokens:,} tokens")
        if self.entry.daily_cost is not None:
            caps.append(f"${self.spent.cost:.2f} of ${self.entry.daily_cost:.2f}")
        return f"today's budget of {kind} {name} is spent ({', '.join(caps)})"

    def extension(self, agent: str) -> Action:
        kind, name = self.entry.scope
        arguments = {
            "scope": kind,
            "name": name,
            "tokens": self.entry.daily_tokens or 0,
            "cost": self.entry.daily_cost or 0.0,
        }
        return Action(agent=agent, kind="budget", tool="extend_budget", arguments=arguments)


ADMINS_DECIDE = Policy(approval="always", approvers=("admin",), expires_minutes=12 * 60)


class Budgets:
    def __init__(self, *, db: Database, clock: Clock, entries: tuple[BudgetEntry, ...]) -> None:
        self._db = db
        self._clock = clock
        self._entries = entries
        self._spent: dict[tuple[date, Scope], Spend] = defaultdict(Spend)
        self._extra: dict[tuple[date, Scope], Spend] = defaultdict(Spend)

    @property
    def active(self) -> bool:
        return bool(self._entries)

    async def replace(self, entries: tuple[BudgetEntry, ...]) -> None:
        """New caps (a config reload); today's spend and extensions carry over.

        Without caps before, nothing was seeded at start: seed now, then switch.
        """
        if entries and not self._entries:
            self._extra.clear()
            await self._seed()
        self._entries = entries

    async def load(self) -> None:
        """Seed today's spend from the runs table and extensions from approved cards."""
        if self._entries:
            await self._seed()

    async def _seed(self) -> None:
        today = self._clock.now().date()
        since = datetime.combine(today, time(), tzinfo=self._clock.now().tzinfo)
        for kind, name, tokens, cost in await RunStore(self._db).spend_since(since):
            self._spent[(today, (kind, name))] = Spend(tokens, cost)
        for approval in await ApprovalStore(self._db).approved_since(since):
            self.extend(Action.from_json(approval.action))

    def scopes(self, agent: str, chat: str, job: str | None) -> list[Scope]:
        scopes = [("agent", agent), ("chat", chat)]
        return [*scopes, ("job", job)] if job else scopes

    def spend(self, scopes: list[Scope], tokens: int, cost: float) -> None:
        today = self._clock.now().date()
        for scope in scopes:
            spend = self._spent[(today, scope)]
            spend.tokens += tokens
            spend.cost += cost

    def overrun(self, scopes: list[Scope]) -> Overrun | None:
        """The first budget among these scopes that is spent, if any."""
        today = self._clock.now().date()
        for entry in self._entries:
            if entry.scope not in scopes:
                continue
            spent = self._spent[(today, entry.scope)]
            extra = self._extra[(today, entry.scope)]
            over_tokens = (
                entry.daily_tokens is not None and spent.tokens >= entry.daily_tokens + extra.tokens
            )
            over_cost = entry.daily_cost is not None and spent.cost >= entry.daily_cost + extra.cost
            if over_tokens or over_cost:
                return Overrun(entry, Spend(spent.tokens, spent.cost))
        return None

    def extend(self, action: Action) -> bool:
        """Apply an approved extension card; other actions are not budget extensions."""
        if action.kind != "budget":
            return False
        args = action.arguments
        extra = self._extra[(self._clock.now().date(), (args["scope"], args["name"]))]
        extra.tokens += int(args.get("tokens", 0))
        extra.cost += float(args.get("cost", 0.0))
        return True
