"""What a failed database call means: wait and try again, or give this write up.

A PostgreSQL restart, a dropped connection, SQLite's lock held by another writer or a
full disk pass: the same write succeeds later, so it must wait, however long. A
missing table, a constraint or a value of the wrong type fail every time: retrying
them only wedges every write queued behind. The two are told apart by the codes the
drivers give (PostgreSQL's SQLSTATE, SQLite's result code, the socket's errno), not by
exception class: SQLite reports a missing table and a locked database as the same
`OperationalError`, and asyncpg's `CannotConnectNowError` reaches us as a bare
`DBAPIError`.

`classify` is the one place that decides; the write-behind queue and every retry
loop over direct writes (`retrying`) use it. `Pressure` tells whoever listens when
writes start failing for lack of space, and when they succeed again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
LOG_EVERY_SECONDS = 60.0  # a long outage is logged when it starts, then once a minute


class Fault(StrEnum):
    UNREACHABLE = "unreachable"  # connection lost, server (re)starting, locked: wait
    FULL = "full"  # no space left (disk, quota, database size): wait, and say so
    # Another transaction won (deadlock, serialization failure): the database is fine and
    # the transaction, rolled back, is simply run again.
    CONFLICT = "conflict"
    PERMANENT = "permanent"  # refused for what it is: the same write fails again


# PostgreSQL SQLSTATEs (appendix A of its manual) that pass: by class, then exact codes.
_PG_FULL = {"53100"}  # disk_full
_PG_CONFLICT = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_PG_TRANSIENT_CLASSES = {"08", "53"}  # connection exception; insufficient resources
_PG_TRANSIENT = {
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    "57P05",  # idle_session_timeout
    "57014",  # query_canceled (statement timeout, pg_cancel_backend)
    "55P03",  # lock_not_available
    "55006",  # object_in_use
    "58000",  # system_error
    "58030",  # io_error
    "25006",  # read_only_sql_transaction (a standby not yet promoted)
}
# SQLite primary result codes (the low byte of an extended code) that pass.
_SQLITE_FULL = 13
_SQLITE_TRANSIENT = {
    5,  # SQLITE_BUSY
    6,  # SQLITE_LOCKED
    7,  # SQLITE_NOMEM
    9,  # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    14,  # SQLITE_CANTOPEN (the data directory went away for a while)
    15,  # SQLITE_PROTOCOL (WAL lock race)
}
_ERRNO_FULL = {errno.ENOSPC, errno.EDQUOT}
_CHAIN_DEPTH = 12


def classify(exc: BaseException) -> Fault:
    """Whether the call that raised `exc` can succeed later (and why), or never will."""
    for link in _chain(exc):
        if getattr(link, "connection_invalidated", False):  # SQLAlchemy: the connection died
            return Fault.UNREACHABLE
        found = _by_code(link)
        if found is not None:
            return found
    return Fault.PERMANENT


def transient(exc: BaseException) -> bool:
    return classify(exc) is not Fault.PERMANENT


def _by_code(exc: BaseException) -> Fault | None:
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return _by_sqlstate(sqlstate)
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary == _SQLITE_FULL:
            return Fault.FULL
        return Fault.UNREACHABLE if primary in _SQLITE_TRANSIENT else Fault.PERMANENT
    if isinstance(exc, OSError):  # refused, reset, timed out: the socket, or the disk
        return Fault.FULL if exc.errno in _ERRNO_FULL else Fault.UNREACHABLE
    if isinstance(exc, (PoolTimeout, DisconnectionError)):  # no connection to be had
        return Fault.UNREACHABLE
    return None


def _by_sqlstate(sqlstate: str) -> Fault:
    if sqlstate in _PG_FULL:
        return Fault.FULL
    if sqlstate in _PG_CONFLICT:
        return Fault.CONFLICT
    if sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT:
        return Fault.UNREACHABLE
    return Fault.PERMANENT


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, then what caused it (SQLAlchemy's wrapper, the adapter, the driver)."""
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(links) < _CHAIN_DEPTH:
        if any(current is seen for seen in links):
            break
        links.append(current)
        current = _cause(current)
    return links


def _cause(exc: BaseException) -> BaseException | None:
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError: the driver's exception
    if isinstance(orig, BaseException):
        return orig
    if exc.__cause__ is not None:
        return exc.__cause__
    return None if exc.__suppress_context__ else exc.__context__


def said(fault: Fault) -> str:
    """What the log says happened, for a fault that is waited out."""
    if fault is Fault.CONFLICT:
        return "a deadlock or serialization failure with another transaction"
    return f"the database is {fault.value}"


def first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class Backoff:
    """Pauses that double from `first` up to `cap`; counts the time waited."""

    def __init__(self, first: float = RETRY_FIRST_SECONDS, cap: float = RETRY_MAX_SECONDS) -> None:
        self._next = first
        self._cap = cap
        self.started = time.monotonic()
        self.attempts = 0
        self.conflicts = 0  # attempts lost to another transaction (deadlocks)
        self._logged_at: float | None = None

    @property
    def waited(self) -> float:
        return time.monotonic() - self.started

    def should_log(self) -> bool:
        """True for the first failure, then once a minute (a long outage, not a log flood)."""
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            return True
        return False

    async def sleep(self) -> None:
        self.attempts += 1
        await asyncio.sleep(self._next)
        self._next = min(self._next * 2, self._cap)


class Pressure:
    """Whether writes are failing for lack of space; listeners hear each change once.

    Each writer that hits a full disk says so under its own name and says when it is
    through; the state is "full" while any of them is still waiting.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, str] = {}  # who waits for space -> the error it got
        self._listeners: list[Callable[[bool, str], None]] = []

    @property
    def full(self) -> bool:
        return bool(self._waiting)

    def listen(self, listener: Callable[[bool, str], None]) -> Callable[[], None]:
        """`listener(full, detail)` on each change; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def full_for(self, who: str, detail: str) -> None:
        was = self.full
        self._waiting[who] = detail
        if not was:
            self._tell(True, detail)

    def through(self, who: str) -> None:
        if self._waiting.pop(who, None) is not None and not self._waiting:
            self._tell(False, "")

    def _tell(self, full: bool, detail: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(full, detail)
            except Exception:  # a listener's failure must not fail the write
                log.exception("a listener for a full disk failed")


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    *,
    pressure: Pressure | None = None,
) -> T:
    """Run `attempt` (one whole transaction) until it succeeds or fails for good.

    A transient failure waits with a doubling pause (capped) and tries again, as long as
    it takes; a permanent one is raised at once. Use it only where running the
    transaction again after a lost connection does no harm (see `storage.inbox`).
    """
    backoff: Backoff | None = None
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            fault = classify(exc)
            if fault is Fault.PERMANENT:
                raise
            backoff = backoff or Backoff()
            _waiting(what, exc, fault, backoff, pressure)
            await backoff.sleep()
            continue
        if backoff is not None:
            _through(what, backoff, pressure)
        return result


def _waiting(
    what: str, exc: BaseException, fault: Fault, backoff: Backoff, pressure: Pressure | None
) -> None:
    if fault is Fault.FULL and pressure is not None:
        pressure.full_for(f"{what}#{id(backoff)}", first_line(exc))
    if backoff.should_log():
        log.warning("%s: %s (%s); waiting and trying again", what, said(fault), first_line(exc))


def _through(what: str, backoff: Backoff, pressure: Pressure | None) -> None:
    log.warning("%s went through after waiting %.1f s for the database", what, backoff.waited)
    if pressure is not None:
        pressure.through(f"{what}#{id(backoff)}")
