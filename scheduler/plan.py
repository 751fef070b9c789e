"""When a job runs: a trigger kind, its spec and a time zone, and the arithmetic on it.

Everything here is pure: functions take `now` instead of reading a clock, so missed
runs after a downtime can be computed (and tested) for any moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

MISSED_CAP = 1000  # counting further buys nothing but CPU; reports say "1000+"
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class TriggerKind(StrEnum):
    INTERVAL = "interval"  # spec: seconds
    CRON = "cron"  # spec: five standard crontab fields (0 or 7 = Sunday)
    DATE = "date"  # spec: ISO date and time with offset


@dataclass(frozen=True, slots=True)
class Plan:
    kind: TriggerKind
    spec: str
    timezone: str = "UTC"

    def trigger(self, anchor: datetime) -> BaseTrigger:
        """The APScheduler trigger; intervals count from `anchor` (the job's creation)."""
        zone = ZoneInfo(self.timezone)
        if self.kind is TriggerKind.INTERVAL:
            seconds = int(self.spec)
            return IntervalTrigger(
                seconds=seconds, start_date=anchor + timedelta(seconds=seconds), timezone=zone
            )
        if self.kind is TriggerKind.CRON:
            return cron_trigger(self.spec, zone)
        return DateTrigger(run_date=datetime.fromisoformat(self.spec), timezone=zone)

    def key(self, anchor: datetime) -> str:
        """Equal for plans whose triggers fire at the same times: their jobs share a timer."""
        base = f"{self.kind}|{self.spec}|{self.timezone}"
        if self.kind is TriggerKind.INTERVAL:
            return f"{base}|{anchor.astimezone(UTC).isoformat()}"
        return base

    def describe(self) -> str:
        zone = "" if self.timezone == "UTC" else f" ({self.timezone})"
        if self.kind is TriggerKind.INTERVAL:
            return f"every {format_seconds(int(self.spec))}"
        if self.kind is TriggerKind.CRON:
            return f"cron {self.spec}{zone}"
        when = datetime.fromisoformat(self.spec).astimezone(ZoneInfo(self.timezone))
        return f"at {when:%Y-%m-%d %H:%M}{zone}"


@dataclass(frozen=True, slots=True)
class Missed:
    """Runs that fell due in a window: how many, the newest one, and the next after now."""

    count: int
    latest: datetime | None
    next_run: datetime | None


def cron_trigger(spec: str, zone: ZoneInfo) -> CronTrigger:
    """A trigger from standard crontab fields.

    APScheduler 3 numbers weekdays from Monday = 0 (its issue 286), unlike cron where
    0 is Sunday; weekdays are handed over as names so `1-5` means Monday to Friday.
    """
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields; this one has {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(weekday),
        timezone=zone,
    )


def weekday_names(field: str) -> str:
    """Standard cron weekdays (`1-5`, `0,6`, `*/2`, `mon-fri`) as APScheduler day names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        days |= _weekday_part(part)
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _weekday_part(part: str) -> set[int]:
    body, _, step_text = part.partition("/")
    step = int(step_text) if step_text else 1
    if step < 1:
        raise ValueError(f"bad step in {part!r}")
    if body == "*":
        low, high = 0, 6
    else:
        first, _, last = body.partition("-")
        low = _weekday(first)
        high = _weekday(last) if last else (6 if step_text else low)
        if last and high == 0 and low > 0:
            high = 7  # `5-0`/`fri-sun`: up to Sunday
    if low > high:
        raise ValueError(f"weekday range {part!r} runs backwards")
    return {day % 7 for day in range(low, high + 1, step)}


def _weekday(text: str) -> int:
    if text in _DAY_NAMES:
        return _DAY_NAMES.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"{text!r} is not a weekday (0-7 or sun-sat)")


def first_due(
    trigger: BaseTrigger, *, last_run: datetime | None, since: datetime
) -> datetime | None:
    """The first fire time still owed: after the last run, and after `since`."""
    if last_run is not None and last_run >= since:
        return _after(trigger, last_run)
    return next_after(trigger, since)


def missed(
    trigger: BaseTrigger, *, last_run: datetime | None, since: datetime, now: datetime
) -> Missed:
    """The runs that fell due up to `now` and did not run (a downtime), coalesced."""
    first = first_due(trigger, last_run=last_run, since=since)
    if first is None or first > now:
        return Missed(0, None, first)
    if isinstance(trigger, IntervalTrigger):
        return _missed_interval(trigger, first, now)
    if isinstance(trigger, DateTrigger):
        return Missed(1, first, None)
    return _missed_stepping(trigger, first, now)


def next_after(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    """The first fire time strictly after `moment` (any moment, not only a fire time)."""
    found: datetime | None = trigger.get_next_fire_time(None, moment)
    if found is not None and found <= moment:
        found = None if isinstance(trigger, DateTrigger) else _after(trigger, found)
    return found


def _after(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    found: datetime | None = trigger.get_next_fire_time(moment, moment)
    while found is not None and found <= moment:  # intervals step from `moment` exactly
        found = trigger.get_next_fire_time(found, found)
    return found


def _missed_interval(trigger: IntervalTrigger, first: datetime, now: datetime) -> Missed:
    step = trigger.interval_length
    count = int((now - first).total_seconds() // step) + 1
    latest = first + timedelta(seconds=step * (count - 1))
    return Missed(count, latest, latest + timedelta(seconds=step))


def _missed_stepping(trigger: BaseTrigger, first: datetime, now: datetime) -> Missed:
    count, latest = 1, first
    while count < MISSED_CAP:
        following = _after(trigger, latest)
        if following is None or following > now:
            return Missed(count, latest, following)
        count, latest = count + 1, following
    latest = _latest_before(trigger, now, span=(latest - first) / MISSED_CAP)
    return Missed(MISSED_CAP, latest, _after(trigger, latest))


def _latest_before(trigger: BaseTrigger, now: datetime, span: timedelta) -> datetime:
    """The newest fire time not after `now`, found by widening a window back from it."""
    window = max(span * 4, timedelta(minutes=1))
    while True:
        found: datetime | None = trigger.get_next_fire_time(None, now - window)
        if found is not None and found <= now:
            while (following := _after(trigger, found)) is not None and following <= now:
                found = following
            return found
        window *= 2


def format_seconds(seconds: int) -> str:
    """`1800` -> `30m`, `5400` -> `1h30m`, `86400` -> `1d`."""
    parts: list[str] = []
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            amount, seconds = divmod(seconds, size)
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
