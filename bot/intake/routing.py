"""Which agent a message that names none goes to. First match wins:

1. the chat's bound agent (`[[bindings]]`);
2. the router model (an llm agent marked `router = true`), when it is available and
   its answer is usable: it hands the message on, asks "which agent?", or answers;
3. the local guess by names, keywords and descriptions (`roster.router.guess`);
4. `[deck] default_agent`, when nothing matched at all;
5. otherwise the user is asked "which agent?", one button per candidate.

A "which agent?" question waits in memory (a restart forgets it; the user asks again).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Config
from bot.text import rich
from bot.types import Button, Incoming, Outgoing
from roster.agent import Usage
from roster.errors import ModelError
from roster.pricing import PriceTable
from roster.providers import Providers
from roster.roster import Roster
from roster.router import (
    MAX_CHOICES,
    Answer,
    Candidate,
    HandOff,
    Junk,
    ModelRouter,
    Unsure,
    guess,
)
from roster.spec import LLMAgentSpec
from roster.toolkit.delegation import ARROW
from storage.audit import AuditLog
from storage.clock import Clock

ROUTE_ACTION = "route"
ROUTER_FAILED = "router.failed"  # audit actions
ROUTER_JUNK = "router.junk"
CHOICE_TTL = timedelta(minutes=30)
MAX_WAITING = 500  # questions kept at once; the oldest is dropped first


@dataclass(frozen=True, slots=True)
class Chosen:
    agent: str
    hops: tuple[str, ...] = ()  # ("router",) when the router handed the message on
    note: str = ""  # why this agent, shown before its answer ("" for bound and default)


@dataclass(frozen=True, slots=True)
class Answered:
    """The router answered the message itself."""

    agent: str
    text: str


@dataclass(frozen=True, slots=True)
class Choose:
    candidates: tuple[str, ...]


Route = Chosen | Answered | Choose


@dataclass(frozen=True, slots=True)
class Spent:
    """A router model call to record: who asked, what, and what it came to."""

    agent: str
    text: str
    outcome: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class _Question:
    chat: str
    text: str
    candidates: tuple[str, ...]
    expires_at: datetime


class Routing:
    def __init__(
        self,
        *,
        config: Config,
        roster: Roster,
        router: ModelRouter | None,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._roster = roster
        self._audit = audit
        self._clock = clock
        self._waiting: dict[str, _Question] = {}
        self.replace(config, router)

    def replace(self, config: Config, router: ModelRouter | None) -> None:
        """New bindings, default agent and router (a config reload); open questions stay."""
        self._bindings = {b.chat: b.agent for b in config.bindings}
        self._default = config.deck.default_agent
        self._router = router

    async def route(self, chat: str, user: str, text: str) -> tuple[Route, Spent | None]:
        """Decide where `text` goes; also the router call to record, if one was made."""
        bound = self._bindings.get(chat)
        if bound:
            return Chosen(bound), None
        candidates = self.candidates()
        if self._router_ready():
            routed, spent = await self._ask_router(user, text, candidates)
            if routed is not None:
                return routed, spent
        else:
            spent = None
        return self._local(text, candidates), spent

    def candidates(self) -> list[Candidate]:
        """The agents free text may go to: runnable now, the router itself excluded."""
        router = self._router.name if self._router else None
        return [
            Candidate(a.name, a.spec.description, a.spec.keywords)
            for a in self._roster
            if a.name != router and self._roster.unavailable_reason(a) is None
        ]

    def _router_ready(self) -> bool:
        if self._router is None or self._router.name not in self._roster:
            return False
        agent = self._roster.get(self._router.name)
        return self._roster.unavailable_reason(agent) is None

    async def _ask_router(
        self, user: str, text: str, candidates: list[Candidate]
    ) -> tuple[Route | None, Spent | None]:
        assert self._router is not None
        name = self._router.name
        try:
            decision = await self._router.decide(text, candidates)
        except ModelError as exc:
            self._audit.record(user, ROUTER_FAILED, name, reason=str(exc))
            return None, None
        if isinstance(decision, Junk):
            self._audit.record(user, ROUTER_JUNK, name, reason=decision.why)
            return None, Spent(name, text, f"unusable answer: {decision.why}", decision.usage)
        if isinstance(decision, HandOff):
            note = f"{name}{ARROW}{decision.agent}" + (
                f": {decision.reason}" if decision.reason else ""
            )
            routed: Route = Chosen(decision.agent, (name,), note)
            return routed, Spent(name, text, f"→ {decision.agent}", decision.usage)
        if isinstance(decision, Unsure):
            return Choose(decision.candidates), Spent(name, text, "asked which", decision.usage)
        assert isinstance(decision, Answer)
        return Answered(name, decision.text), Spent(name, text, decision.text, decision.usage)

    def _local(self, text: str, candidates: list[Candidate]) -> Route:
        picked = guess(text, candidates)
        if picked.agent is not None:
            why = f"matched {', '.join(picked.matched)}" if picked.matched else "the only agent"
            note = "" if len(candidates) == 1 else f"{ARROW.strip()} {picked.agent} ({why})"
            return Chosen(picked.agent, note=note)
        if picked.candidates:
            return Choose(picked.candidates)
        if self._default:  # even when it cannot run now: its refusal says why
            return Chosen(self._default)
        return Choose(tuple(c.name for c in candidates[:MAX_CHOICES]))

    # --- "which agent?" ----------------------------------------------------------------

    def question(self, incoming: Incoming, text: str, candidates: tuple[str, ...]) -> Outgoing:
        """The "which agent?" message: one button per candidate, remembered for a while."""
        token = secrets.token_hex(4)
        expires = self._clock.now() + CHOICE_TTL
        self._waiting[token] = _Question(incoming.chat, text, candidates, expires)
        while len(self._waiting) > MAX_WAITING:
            self._waiting.pop(next(iter(self._waiting)))
        buttons = tuple(Button(name, ROUTE_ACTION, f"{token}:{name}") for name in candidates)
        return Outgoing(
            chat=incoming.chat,
            thread=incoming.thread,
            text=rich("Which agent should answer?"),
            buttons=buttons,
        )

    def take(self, incoming: Incoming) -> tuple[str, str] | str:
        """The (agent, text) a press picked, or why the press changes nothing."""
        assert incoming.press is not None
        token, _, agent = incoming.press.value.partition(":")
        question = self._waiting.get(token[:16])
        if question is None or question.chat != incoming.chat:
            return "That question is no longer open; send your message again."
        if agent not in question.candidates:
            return "That agent was not one of the choices."
        del self._waiting[token]
        if self._clock.now() >= question.expires_at:
            return "That question has expired; send your message again."
        return agent, question.text


def routing_for(
    config: Config,
    *,
    roster: Roster,
    providers: Providers,
    prices: PriceTable,
    audit: AuditLog,
    clock: Clock,
) -> Routing:
    """The routing service, with the router model when an agent is marked `router = true`."""
    router = router_for(config, providers=providers, prices=prices)
    return Routing(config=config, roster=roster, router=router, audit=audit, clock=clock)


def router_for(config: Config, *, providers: Providers, prices: PriceTable) -> ModelRouter | None:
    """The router model, when an agent is marked `router = true`."""
    spec = next((a for a in config.agents if isinstance(a, LLMAgentSpec) and a.router), None)
    return None if spec is None else ModelRouter(spec, providers=providers, prices=prices)
