"""What the deck exports, and where each figure comes from.

Counters are fed as things happen, from the audit log (every run start and end and
every approval decision is audited already, so the metrics cannot disagree with it)
and from log records at ERROR. Gauges are sampled when Prometheus scrapes: queue
lengths from the database, running runs and open tasks from memory, RSS from /proc.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.metrics.registry import Counter, Family, Gauge, Histogram
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


class DeckMetrics:
    def __init__(self) -> None:
        self.runs_started = Counter(
            "agentdeck_runs_started_total", "Runs started, by agent.", ("agent",)
        )
        self.runs = Counter(
            "agentdeck_runs_total", "Runs ended, by agent and status.", ("agent", "status")
        )
        self.run_seconds = Histogram(
            "agentdeck_run_duration_seconds",
            "Seconds from a run's start to its end (approval waits included), by agent.",
            LATENCY_BUCKETS,
            ("agent",),
        )
        self.approvals = Counter(
            "agentdeck_approvals_total",
            "Approval requests (outcome=requested) and what became of them.",
            ("outcome",),
        )
        self.errors = Counter(
            "agentdeck_errors_total", "Log records at ERROR or worse, by logger.", ("logger",)
        )
        self.queues = Gauge(
            "agentdeck_queue_length",
            "Rows waiting: inbox (unhandled updates), outbox (pending, undelivered), approvals.",
            ("queue",),
        )
        self.runs_active = Gauge("agentdeck_runs_active", "Runs executing now.")
        self.tasks = Gauge(
            "agentdeck_tasks",
            "Open asyncio tasks: the deck's own work (scope=deck), the whole process (all).",
            ("scope",),
        )
        self.rss = Gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        self.start_time = Gauge(
            "process_start_time_seconds", "Start time of the process since the Unix epoch."
        )
        self.start_time.set(time.time())
        self._open: OrderedDict[str, datetime] = OrderedDict()

    def families(self) -> list[Family]:
        return [
            self.runs_started,
            self.runs,
            self.run_seconds,
            self.runs_active,
            self.approvals,
            self.errors,
            self.queues,
            self.tasks,
            self.rss,
            self.start_time,
        ]

    # -- fed as things happen -----------------------------------------------------------

    def on_audit(self, event: Event) -> None:
        """An audit observer: counts runs and approvals from the events that record them."""
        kind, _, what = event.action.partition(".")
        if kind == "run":
            self._on_run(event, what)
        elif kind == "approval" and what in APPROVAL_OUTCOMES:
            self.approvals.inc(outcome=what)

    def _on_run(self, event: Event, what: str) -> None:
        agent = str(event.detail.get("agent") or "?")
        if what == "started":
            self.runs_started.inc(agent=agent)
            self._open[event.subject] = event.at
            while len(self._open) > MAX_OPEN_RUNS:
                self._open.popitem(last=False)
        elif what in ENDED:
            self.runs.inc(agent=agent, status=what)
            started = self._open.pop(event.subject, None)
            if started is not None:
                self.run_seconds.observe((event.at - started).total_seconds(), agent=agent)

    # -- sampled at scrape ----------------------------------------------------------------

    async def sample(self, deck: Deck) -> None:
        self.runs_active.set(len(deck.runner.active()))
        self.tasks.set(len(deck.tasks), scope="deck")
        self.tasks.set(len(asyncio.all_tasks()), scope="all")
        rss = await asyncio.to_thread(resident_bytes)
        if rss is not None:
            self.rss.set(rss)
        lengths = await queue_lengths(deck.db)
        self.queues.set(lengths.inbox_unhandled, queue="inbox")
        self.queues.set(lengths.outbox_pending, queue="outbox")
        self.queues.set(lengths.outbox_undelivered, queue="outbox_undelivered")
        self.queues.set(lengths.approvals_pending, queue="approvals")


class ErrorCounter(logging.Handler):
    """Counts records at ERROR or worse; formats nothing, writes nothing."""

    def __init__(self, metrics: DeckMetrics) -> None:
        super().__init__(level=logging.ERROR)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self._metrics.errors.inc(logger=record.name)


def resident_bytes() -> int | None:
    """This process's resident set size (Linux /proc); None where there is no /proc."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
