"""The scheduler on its own: schedules, missed runs, claims, firing, catch-up, the watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.commands.jobs import scheduler_lines
from bot.text import plain_text, rich
from scheduler.errors import ScheduleError
from scheduler.parse import parse_config_schedule, parse_request
from scheduler.plan import (
    MISSED_CAP,
    Plan,
    TriggerKind,
    cron_trigger,
    missed,
    next_after,
    weekday_names,
)
from scheduler.service import Fire, Scheduler, Settings
from scheduler.watch import Watch
from storage.clock import FakeClock, SystemClock
from storage.db import Database, sqlite_url
from storage.jobs import Claim, FireKind, JobStore
from storage.locks import AdvisoryLock
from storage.models import JobFire
from tests.support.scheduling import job
from tests.support.waiting import eventually

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # a Saturday


class Hooks:
    """Records what the scheduler asks the bot to do."""

    def __init__(self) -> None:
        self.fires: list[Fire] = []
        self.skips: list[Fire] = []
        self.alerts: list[str] = []
        self.fired = asyncio.Event()

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        self.fires.append(fire)
        self.fired.set()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def skipped(self, fire: Fire) -> None:
        self.skips.append(fire)

    def alert(self, text: str) -> None:
        self.alerts.append(text)


@pytest.fixture
async def db(data_dir: Path) -> AsyncIterator[Database]:
    async with Database(sqlite_url(data_dir)) as database:
        yield database


# --- schedules --------------------------------------------------------------------------


def test_cron_weekdays_count_from_sunday_like_cron() -> None:
    assert weekday_names("1-5") == "mon,tue,wed,thu,fri"
    assert weekday_names("0,6") == weekday_names("sat,7") == "sun,sat"
    assert weekday_names("*/2") == "sun,tue,thu,sat"
    assert weekday_names("fri-sun") == "sun,fri,sat"
    monday_nine = next_after(cron_trigger("0 9 * * 1-5", ZoneInfo("UTC")), T0)
    assert monday_nine == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_cron_in_a_time_zone() -> None:
    berlin = cron_trigger("0 9 * * *", ZoneInfo("Europe/Berlin"))
    assert next_after(berlin, T0) == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_chat_forms_read_as_plans() -> None:
    read = lambda kind, text: parse_request(kind, text, default_tz="UTC", now=T0)  # noqa: E731
    assert read("every", "30m host disk").plan == Plan(TriggerKind.INTERVAL, "1800")
    assert read("every", "day at 09:00 reporter summary").plan.spec == "0 9 * * *"
    assert read("cron", '"0 9 * * 1-5" reporter daily summary').input == "daily summary"
    assert read("at", "2026-12-01 08:00 host uptime").plan.spec == "2026-12-01T08:00:00+00:00"
    assert read("at", "in 2h host uptime").plan.spec == "2026-11-21T12:00:00+00:00"
    request = read("every", "weekday at 08:30 tz=Europe/Berlin to=test:ops host disk")
    assert (request.plan.timezone, request.report_to, request.agent) == (
        "Europe/Berlin",
        "test:ops",
        "host",
    )


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("every", "30x host disk", "Cannot read '30x' as an interval"),
        ("cron", '"0 25 * * *" host disk', "Cannot read the cron expression"),
        ("cron", '"0 9 * *" host disk', "has 5 fields; this one has 4"),
        ("at", "2020-01-01 08:00 host uptime", "has passed"),
        ("at", "in soon host uptime", "Cannot read 'soon'"),
        ("every", "30m", "Which agent should run?"),
        ("every", "30m tz=Mars/Olympus host disk", "Unknown time zone"),
    ],
)
def test_bad_expressions_are_answered_with_an_example(kind: str, text: str, problem: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_request(kind, text, default_tz="UTC", now=T0)
    assert problem in str(caught.value)
    assert "Example: /" + kind in str(caught.value)


def test_config_at_needs_a_date() -> None:
    with pytest.raises(ScheduleError, match="needs a date and a time"):
        parse_config_schedule({"at": "in 2h"}, timezone="UTC")
    plan = parse_config_schedule({"at": "2020-01-01 08:00"}, timezone="UTC")  # past is fine
    assert plan.kind is TriggerKind.DATE


def test_missed_runs_of_an_interval_are_counted_and_coalesced() -> None:
    trigger = Plan(TriggerKind.INTERVAL, "1800").trigger(T0)
    down = missed(
        trigger,
        last_run=T0 + timedelta(minutes=30),
        since=T0,
        now=T0 + timedelta(hours=3, minutes=10),
    )
    assert down.count == 5  # 11:00 11:30 12:00 12:30 13:00
    assert down.latest == T0 + timedelta(hours=3)
    assert down.next_run == T0 + timedelta(hours=3, minutes=30)


def test_missed_runs_count_from_a_resume_not_from_before() -> None:
    trigger = Plan(TriggerKind.INTERVAL, "600").trigger(T0)
    resumed = T0 + timedelta(hours=5)
    down = missed(
        trigger,
        last_run=T0 + timedelta(minutes=10),
        since=resumed,
        now=resumed + timedelta(minutes=5),
    )
    assert down.count == 0
    assert down.next_run == resumed + timedelta(minutes=10)


def test_missed_runs_of_a_cron_and_a_date() -> None:
    daily = Plan(TriggerKind.CRON, "0 9 * * *").trigger(T0)
    down = missed(
        daily,
        last_run=datetime(2026, 11, 20, 9, tzinfo=UTC),
        since=T0 - timedelta(days=9),
        now=datetime(2026, 11, 23, 12, tzinfo=UTC),
    )
    assert (down.count, down.latest) == (3, datetime(2026, 11, 23, 9, tzinfo=UTC))
    once = Plan(TriggerKind.DATE, (T0 + timedelta(hours=1)).isoformat()).trigger(T0)
    assert missed(once, last_run=None, since=T0, now=T0 + timedelta(hours=2)).count == 1
    assert (
        missed(once, last_run=T0 + timedelta(hours=1), since=T0, now=T0 + timedelta(hours=2)).count
        == 0
    )


def test_a_long_downtime_of_a_busy_cron_stops_counting_but_finds_the_newest() -> None:
    minutely = Plan(TriggerKind.CRON, "* * * * *").trigger(T0)
    now = T0 + timedelta(days=3, seconds=30)
    down = missed(minutely, last_run=T0, since=T0, now=now)
    assert down.count == MISSED_CAP
    assert down.latest == T0 + timedelta(days=3)
    assert down.next_run == T0 + timedelta(days=3, minutes=1)


# --- claims -----------------------------------------------------------------------------


async def test_a_due_run_is_claimed_once(db: Database) -> None:
    store = JobStore(db=db, clock=FakeClock(T0))
    await store.add(job("a", "60", kind=TriggerKind.INTERVAL, at=T0))
    due = T0 + timedelta(minutes=1)
    claim = Claim("a", due, FireKind.SCHEDULED, due + timedelta(minutes=1), "run1")
    first, second = await asyncio.gather(
        store.claim([claim], "one"),
        store.claim([Claim("a", due, FireKind.SCHEDULED, None, "run2")], "two"),
    )
    assert len(first) + len(second) == 1
    stored = await store.get("a")
    assert stored is not None
    assert stored.last_run_at == due


# --- the service ------------------------------------------------------------------------


def fast(**changes: Any) -> Settings:
    base = {"heartbeat_seconds": 0.2, "sync_seconds": 0.1, "takeover_seconds": 0.2}
    return Settings(**{**base, **changes})


async def test_a_job_every_second_fires_each_second_once(db: Database) -> None:
    store, hooks = JobStore(db=db, clock=SystemClock()), Hooks()
    now = datetime.now(UTC)
    await store.add(job("tick", "1", kind=TriggerKind.INTERVAL, at=now))
    scheduler = Scheduler(
        store=store, lock=AdvisoryLock(db, 1), hooks=hooks, clock=SystemClock(), settings=fast()
    )
    async with scheduler:
        async with asyncio.timeout(5):
            while len(hooks.fires) < 2:
                hooks.fired.clear()
                await hooks.fired.wait()
    times = [fire.claim.scheduled_for for fire in hooks.fires]
    assert len(set(times)) == len(times)
    assert (times[1] - times[0]) == timedelta(seconds=1)
    async with db.session() as session:
        from sqlmodel import select

        claimed = (await session.exec(select(JobFire).where(JobFire.job_id == "tick"))).all()
    handed = [fire for fire in claimed if fire.kind != FireKind.AHEAD]
    assert len(handed) == len(times)
    assert len(claimed) - len(handed) <= 1  # claimed ahead, left for the next start


async def test_a_job_made_while_leading_fires(db: Database) -> None:
    store, hooks = JobStore(db=db, clock=SystemClock()), Hooks()
    scheduler = Scheduler(
        store=store, lock=AdvisoryLock(db, 1), hooks=hooks, clock=SystemClock(), settings=fast()
    )
    async with scheduler:
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        soon = datetime.now(UTC) + timedelta(seconds=0.5)
        await scheduler.create(
            job("once", soon.isoformat(), kind=TriggerKind.DATE, at=datetime.now(UTC))
        )
        await asyncio.wait_for(hooks.fired.wait(), 5)
    assert [f.job.id for f in hooks.fires] == ["once"]
    stored = await store.get("once")
    assert stored is not None
    assert stored.state == "done"


async def test_restart_makes_up_missed_runs_once_and_reports_old_ones(db: Database) -> None:
    store, hooks = JobStore(db=db, clock=SystemClock()), Hooks()
    now = datetime.now(UTC)
    made = now - timedelta(hours=1, minutes=5)
    await store.add(
        job(
            "recent",
            "600",
            kind=TriggerKind.INTERVAL,
            at=made,
            last_run_at=made + timedelta(minutes=10),
        )
    )
    await store.add(job("stale", "0 0 1 1 *", kind=TriggerKind.CRON, at=now - timedelta(days=400)))
    settings = fast(grace=timedelta(minutes=30))
    async with Scheduler(
        store=store, lock=AdvisoryLock(db, 1), hooks=hooks, clock=SystemClock(), settings=settings
    ) as scheduler:
        await asyncio.wait_for(scheduler.ready.wait(), 5)
    [fire] = hooks.fires
    assert (fire.job.id, fire.claim.kind, fire.claim.missed) == ("recent", FireKind.CATCHUP, 5)
    [skip] = hooks.skips
    assert (skip.job.id, skip.claim.kind, skip.claim.missed) == ("stale", FireKind.SKIPPED, 1)
    hooks.fires.clear()
    async with Scheduler(
        store=store, lock=AdvisoryLock(db, 1), hooks=hooks, clock=SystemClock(), settings=settings
    ) as scheduler:
        await asyncio.wait_for(scheduler.ready.wait(), 5)
    assert hooks.fires == []  # made up once, not at every start


async def test_the_watch_tells_the_admin_once_when_due_jobs_stop_firing(db: Database) -> None:
    clock = FakeClock(T0)
    store, hooks = JobStore(db=db, clock=clock), Hooks()
    await store.add(
        job("late", "60", kind=TriggerKind.INTERVAL, at=T0, next_run_at=T0 + timedelta(minutes=1))
    )
    watch = Watch(store=store, clock=clock, alert=hooks.alert, settings=fast(), holder="me")
    await watch.check(T0)
    assert hooks.alerts == []
    clock.advance(timedelta(minutes=5))
    await watch.check(T0)
    await watch.check(T0)
    assert len(hooks.alerts) == 1
    assert "stopped firing: late" in hooks.alerts[0]
    beat = await store.heartbeat("scheduler")
    assert beat is not None
    assert beat.holder == "me"


async def test_a_standby_notices_a_leader_that_stopped_beating(db: Database) -> None:
    clock = FakeClock(T0)
    store, hooks = JobStore(db=db, clock=clock), Hooks()
    await store.beat("scheduler", "other:1", T0)
    watch = Watch(store=store, clock=clock, alert=hooks.alert, settings=fast(), holder="me")
    clock.advance(timedelta(minutes=10))
    await watch.check(None)
    assert "other:1 has not written a heartbeat" in hooks.alerts[0]


def _one_leads(*schedulers: Scheduler) -> set[str] | None:
    """The schedulers' roles, once one of them leads."""
    roles = {str(s.role) for s in schedulers}
    return roles if "leader" in roles else None


async def test_only_one_scheduler_leads_on_postgresql(pg_url: str) -> None:
    async with Database(pg_url) as first_db, Database(pg_url) as second_db:
        first_hooks, second_hooks = Hooks(), Hooks()
        first = Scheduler(
            store=JobStore(db=first_db, clock=SystemClock()),
            lock=AdvisoryLock(first_db, 99),
            hooks=first_hooks,
            clock=SystemClock(),
            settings=fast(),
        )
        second = Scheduler(
            store=JobStore(db=second_db, clock=SystemClock()),
            lock=AdvisoryLock(second_db, 99),
            hooks=second_hooks,
            clock=SystemClock(),
            settings=fast(),
        )
        async with second:
            async with first:
                roles = await eventually(lambda: _one_leads(first, second), timeout=10)
                assert roles == {"leader", "standby"}
                leader = first if first.role == "leader" else second
                standby = second if leader is first else first
            if leader is first:  # the leader stopped: the other takes over
                await asyncio.wait_for(standby.ready.wait(), 5)
                assert standby.role == "leader"


async def test_status_says_when_the_leader_it_names_stopped_beating(db: Database) -> None:
    """/status names the process whose heartbeat is stored; one silent for longer than a
    live leader ever is (a process killed before this start) is said to be silent."""
    clock = FakeClock(T0)
    store = JobStore(db=db, clock=clock)
    await store.beat("scheduler", "other:1", T0)
    scheduler = Scheduler(
        store=store, lock=AdvisoryLock(db, 1), hooks=Hooks(), clock=clock, settings=fast()
    )
    clock.advance(timedelta(seconds=30))
    [line] = [plain_text(rich(p)) for p in await scheduler_lines(scheduler, clock)]
    assert line.strip() == "Scheduler: stopped; leader other:1; heartbeat 30 s ago"
    clock.advance(timedelta(minutes=45))
    [line] = [plain_text(rich(p)) for p in await scheduler_lines(scheduler, clock)]
    assert line.strip() == (
        "Scheduler: stopped; leader other:1; heartbeat 45 min ago "
        "(stopped beating: that process has ended or hangs)"
    )
