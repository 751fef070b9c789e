"""What the deck exports, and where each figure comes from.

Counters are fed as things happen, from the audit log (every run start and end and
every approval decision is audited already, so the metrics cannot disagree with it)
and from log records at ERROR. Gauges are sampled when Prometheus scrapes: queue
lengths from the database, running runs and open tasks from memory. The process
figures (RSS, CPU, start time, open files), the garbage collector's and the Python
version come from prometheus-client's own default collectors.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.registry import Collector

from storage.audit import Event
from storage.models import RunState
from storage.queues import queue_lengths

if TYPE_CHECKING:
    from bot.deck import Deck

# Seconds from a run's start to its end, approval waits included.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
MAX_OPEN_RUNS = 10_000  # start times kept for the latency; the oldest go first
ENDED = frozenset(s.value for s in RunState) - {RunState.RUNNING, RunState.WAITING}
APPROVAL_OUTCOMES = frozenset(
    {"requested", "approved", "denied", "expired", "refused", "forged", "late", "escalated"}
)


# A `_created` series beside each counter doubles the lines for no figure we use.
disable_created_metrics()  # type: ignore[no-untyped-call]

DEFAULT_COLLECTORS: tuple[Collector, ...] = (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR)


class DeckMetrics:
    """The deck's metric families, in a registry of their own (one per deck, so that
    several decks in one process, as in the tests, never share a count)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        for collector in DEFAULT_COLLECTORS:
            registry.register(collector)
        self.runs_started = Counter(
            "agentdeck_runs_started", "Runs started, by agent.", ("agent",), registry=registry
        )
        self.runs = Counter(
            "agentdeck_runs",
            "Runs ended, by agent and status.",
            ("agent", "status"),
            registry=registry,
        )
        self.run_seconds = Histogram(
            "agentdeck_run_duration_seconds",
            "Seconds from a run's start to its end (approval waits included), by agent.",
            ("agent",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "agentdeck_cost_usd",
            "Money the runs' model calls cost (the CLIs' own figures for claude agents).",
            ("agent",),
            registry=registry,
        )
        self.tokens = Counter(
            "agentdeck_tokens",
            "Tokens the runs used, by agent and direction (in, out).",
            ("agent", "direction"),
            registry=registry,
        )
        self.approvals = Counter(
            "agentdeck_approvals",
            "Approval requests (outcome=requested) and what became of them.",
            ("outcome",),
            registry=registry,
        )
        self.errors = Counter(
            "agentdeck_errors",
            "Log records at ERROR or worse, by logger.",
            ("logger",),
            registry=registry,
        )
        self.queues = Gauge(
            "agentdeck_queue_length",
            "Rows waiting: inbox (unhandled updates), outbox (pending, undelivered), approvals.",
            ("queue",),
            registry=registry,
        )
        self.runs_active = Gauge("agentdeck_runs_active", "Runs executing now.", registry=registry)
        self.tasks = Gauge(
            "agentdeck_tasks",
            "Open asyncio tasks: the deck's own work (scope=deck), the whole process (all).",
            ("scope",),
            registry=registry,
        )
        self._open: OrderedDict[str, datetime] = OrderedDict()

    # -- fed as things happen -----------------------------------------------------------

    def on_audit(self, event: Event) -> None:
        """An audit observer: counts runs and approvals from the events that record them."""
        kind, _, what = event.action.partition(".")
        if kind == "run":
            self._on_run(event, what)
        elif kind == "approval" and what in APPROVAL_OUTCOMES:
            self.approvals.labels(outcome=what).inc()

    def _on_run(self, event: Event, what: str) -> None:
        agent = str(event.detail.get("agent") or "?")
        if what == "started":
            self.runs_started.labels(agent=agent).inc()
            self._open[event.subject] = event.at
            while len(self._open) > MAX_OPEN_RUNS:
                self._open.popitem(last=False)
        elif what in ENDED:
            self.runs.labels(agent=agent, status=what).inc()
            self._on_spend(agent, event.detail)
            started = self._open.pop(event.subject, None)
            if started is not None:
                seconds = (event.at - started).total_seconds()
                self.run_seconds.labels(agent=agent).observe(seconds)

    def _on_spend(self, agent: str, detail: dict[str, object]) -> None:
        cost, tokens_in, tokens_out = (detail.get(k) for k in ("cost", "tokens_in", "tokens_out"))
        if isinstance(cost, int | float) and cost > 0:
            self.cost.labels(agent=agent).inc(cost)
        for direction, count in (("in", tokens_in), ("out", tokens_out)):
            if isinstance(count, int) and count > 0:
                self.tokens.labels(agent=agent, direction=direction).inc(count)

    # -- sampled at scrape ----------------------------------------------------------------

    async def sample(self, deck: Deck) -> None:
        self.runs_active.set(len(deck.runner.active()))
        self.tasks.labels(scope="deck").set(len(deck.tasks))
        self.tasks.labels(scope="all").set(len(asyncio.all_tasks()))
        lengths = await queue_lengths(deck.db)
        self.queues.labels(queue="inbox").set(lengths.inbox_unhandled)
        self.queues.labels(queue="outbox").set(lengths.outbox_pending)
        self.queues.labels(queue="outbox_undelivered").set(lengths.outbox_undelivered)
        self.queues.labels(queue="approvals").set(lengths.approvals_pending)


class ErrorCounter(logging.Handler):
    """Counts records at ERROR or worse; formats nothing, writes nothing."""

    def __init__(self, metrics: DeckMetrics) -> None:
        super().__init__(level=logging.ERROR)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self._metrics.errors.labels(logger=record.name).inc()
