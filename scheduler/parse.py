"""The human forms of a schedule, as typed in chat or written in `[[jobs]]`.

    /every 30m host disk                    every 2 hours · every hour · every 1h30m
    /every day at 09:00 reporter summary    weekday / monday / weekend at HH:MM
    /cron "0 9 * * 1-5" reporter summary    five standard cron fields (0 = Sunday)
    /at 2026-12-01 08:00 host uptime        /at in 2h ... · /at tomorrow 08:00 ... · /at 17:30 ...

After the expression, `tz=Area/City` and `to=<chat>` may follow; then the agent and
its input. Every refusal says what was wrong and shows a form that works.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.errors import ScheduleError
from scheduler.plan import Plan, TriggerKind, cron_trigger

EXAMPLES = {
    "every": "/every 30m host disk  or  /every day at 09:00 reporter summary",
    "cron": '/cron "0 9 * * 1-5" reporter summary',
    "at": "/at 2026-12-01 08:00 host uptime  or  /at in 2h host uptime",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_WORD_UNITS = {
    "sec": "s", "second": "s", "min": "m", "minute": "m",
    "hr": "h", "hour": "h", "day": "d", "week": "w",
}  # fmt: skip
_DAYS = {
    "day": "*", "weekday": "1-5", "weekend": "0,6", "sunday": "0", "monday": "1",
    "tuesday": "2", "wednesday": "3", "thursday": "4", "friday": "5", "saturday": "6",
}  # fmt: skip
_COMPACT = re.compile(r"^((?:\d+[smhdw])+)(?=\s|$)", re.IGNORECASE)
_WORDS = re.compile(r"^(\d+)\s*(sec|second|min|minute|hr|hour|day|week)s?(?=\s|$)", re.I)
_ONE_UNIT = re.compile(r"^(second|minute|hour|day|week)(?=\s|$)", re.IGNORECASE)
_DAY_AT = re.compile(r"^(\w+?)s?\s+at\s+(\d{1,2}):(\d{2})(?=\s|$)", re.IGNORECASE)
_QUOTED = re.compile(r"""^(["'])(.+?)\1(?=\s|$)""")
_FIVE = re.compile(r"^(\S+(?:\s+\S+){4})(?=\s|$)")
_IN = re.compile(r"^in\s+(\S+(?:\s+(?:sec|second|min|minute|hr|hour|day|week)s?)?)(?=\s|$)", re.I)
_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}):(\d{2})(?=\s|$)")
_DAY_TIME = re.compile(r"^(?:(today|tomorrow)\s+)?(\d{1,2}):(\d{2})(?=\s|$)", re.I)
_OPTION = re.compile(r"^(tz|to)=(\S+)(?=\s|$)")


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a /every, /cron or /at asked for."""

    plan: Plan
    agent: str
    input: str
    report_to: str | None = None


def parse_request(kind: str, text: str, *, default_tz: str, now: datetime) -> JobRequest:
    """Read `/every|/cron|/at <schedule> [tz=..] [to=..] <agent> <input>`."""
    example = EXAMPLES[kind]
    if not text.strip():
        raise ScheduleError(f"/{kind} needs a schedule and an agent.", example)
    build, rest = _expression(kind, text.strip(), example)
    options, rest = _options(rest)
    zone = options.get("tz", default_tz)
    check_timezone(zone, example)
    agent, _, job_input = rest.partition(" ")
    if not agent:
        raise ScheduleError("Which agent should run? Name it after the schedule.", example)
    plan = build(zone, now)
    return JobRequest(plan, agent.lower(), job_input.strip(), options.get("to"))


def parse_schedule(kind: str, text: str, *, timezone: str, now: datetime) -> Plan:
    """Read a schedule alone (config: `every = "30m"`, `cron = "..."`, `at = "..."`)."""
    example = EXAMPLES[kind].split("  or  ")[0].split(" ", 1)[1]
    build, rest = _expression(kind, text.strip(), example)
    if rest:
        raise ScheduleError(f"Unexpected {rest!r} after the schedule.", example)
    check_timezone(timezone, example)
    return build(timezone, now)


def check_timezone(name: str, example: str = "tz=Europe/Berlin") -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problem = f"Unknown time zone {name!r} (names look like tz=Europe/Berlin)."
        raise ScheduleError(problem, example) from None


# A schedule read from text, waiting for its time zone (options come after it) and now.
Build = Callable[[str, datetime], Plan]


def _expression(kind: str, text: str, example: str) -> tuple[Build, str]:
    reader = {"every": _every, "cron": _cron, "at": _at}[kind]
    return reader(text, example)


def _every(text: str, example: str) -> tuple[Build, str]:
    if match := _DAY_AT.match(text):
        days = _DAYS.get(match[1].lower().removesuffix("s"))
        if days is None:
            raise ScheduleError(f"{match[1]!r} is not a day (day, weekday, monday…).", example)
        hour, minute = _clock_time(match[2], match[3], example)
        spec = f"{minute} {hour} * * {days}"
        return lambda z, _n: Plan(TriggerKind.CRON, spec, z), _rest(text, match)
    seconds, rest = _duration(text, example)
    if seconds < 1:
        raise ScheduleError("The interval must be at least one second.", example)
    spec = str(seconds)
    return lambda z, _n: Plan(TriggerKind.INTERVAL, spec, z), rest


def _duration(text: str, example: str) -> tuple[int, str]:
    if match := _COMPACT.match(text):
        pairs = re.findall(r"(\d+)([smhdw])", match[1].lower())
        return sum(int(n) * _UNITS[u] for n, u in pairs), _rest(text, match)
    if match := _WORDS.match(text):
        unit = _WORD_UNITS[match[2].lower()]
        return int(match[1]) * _UNITS[unit], _rest(text, match)
    if match := _ONE_UNIT.match(text):
        return _UNITS[_WORD_UNITS[match[1].lower()]], _rest(text, match)
    word = _first_word(text)
    raise ScheduleError(f"Cannot read {word!r} as an interval (30s, 30m, 2h, 1d, 1h30m).", example)


def _cron(text: str, example: str) -> tuple[Build, str]:
    match = _QUOTED.match(text) or _FIVE.match(text)
    if match is None:
        raise ScheduleError("A cron schedule has five fields, in quotes.", example)
    spec = " ".join((match[2] if match.re is _QUOTED else match[1]).split())
    try:
        cron_trigger(spec, ZoneInfo("UTC"))
    except ValueError as exc:
        raise ScheduleError(f"Cannot read the cron expression {spec!r}: {exc}.", example) from None
    return lambda z, _n: Plan(TriggerKind.CRON, spec, z), _rest(text, match)


def _at(text: str, example: str) -> tuple[Build, str]:
    if match := _IN.match(text):
        seconds, extra = _duration(match[1], example)
        if extra:
            raise ScheduleError(f"Cannot read {match[1]!r} as a delay.", example)
        delay = timedelta(seconds=seconds)
        return lambda z, n: _date_plan(n + delay, z, n, example), _rest(text, match)
    if match := _DATE_TIME.match(text):
        day, hour, minute = match[1], match[2], match[3]

        def on_date(zone: str, now: datetime) -> Plan:
            try:
                date = datetime.fromisoformat(day).date()
            except ValueError:
                raise ScheduleError(f"{day} is not a date.", example) from None
            when = datetime.combine(date, _time(hour, minute, example), ZoneInfo(zone))
            return _date_plan(when, zone, now, example)

        return on_date, _rest(text, match)
    if match := _DAY_TIME.match(text):
        word, hour, minute = (match[1] or "").lower(), match[2], match[3]

        def on_time(zone: str, now: datetime) -> Plan:
            local = now.astimezone(ZoneInfo(zone))
            when = datetime.combine(local.date(), _time(hour, minute, example), ZoneInfo(zone))
            if word == "tomorrow" or (not word and when <= now):
                when += timedelta(days=1)
            return _date_plan(when, zone, now, example)

        return on_time, _rest(text, match)
    word = _first_word(text)
    raise ScheduleError(f"Cannot read {word!r} as a time.", example)


def _date_plan(when: datetime, zone: str, now: datetime, example: str) -> Plan:
    if when <= now:
        shown = when.astimezone(ZoneInfo(zone))
        raise ScheduleError(f"{shown:%Y-%m-%d %H:%M} ({zone}) has passed.", example)
    return Plan(TriggerKind.DATE, when.isoformat(timespec="seconds"), zone)


def _clock_time(hour: str, minute: str, example: str) -> tuple[int, int]:
    value = _time(hour, minute, example)
    return value.hour, value.minute


def _time(hour: str, minute: str, example: str) -> time:
    if not (0 <= int(hour) <= 23 and 0 <= int(minute) <= 59):
        raise ScheduleError(f"{hour}:{minute} is not a time of day (00:00 to 23:59).", example)
    return time(int(hour), int(minute))


def _options(text: str) -> tuple[dict[str, str], str]:
    options: dict[str, str] = {}
    while match := _OPTION.match(text):
        options[match[1]] = match[2]
        text = _rest(text, match)
    return options, text


def _rest(text: str, match: re.Match[str]) -> str:
    return text[match.end() :].strip()


def _first_word(text: str) -> str:
    words = text.split(maxsplit=1)
    return words[0] if words else ""


def parse_config_schedule(given: dict[str, str], *, timezone: str) -> Plan:
    """Read `[[jobs]]`'s `every`, `cron` or `at` (exactly one; `at` needs a date and time)."""
    if len(given) != 1:
        raise ScheduleError("Give exactly one of every, cron or at.", 'every = "30m"')
    kind, text = next(iter(given.items()))
    if kind == "at" and not _DATE_TIME.match(text.strip()):
        raise ScheduleError(
            "In the config, `at` needs a date and a time.", 'at = "2026-12-01 08:00"'
        )
    # A config job's date may be past: it may have run already; the scheduler knows.
    return parse_schedule(kind, text, timezone=timezone, now=_EPOCH)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
