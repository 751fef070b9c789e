"""Bad sign-in tokens, per client address: one audit row each minute, not one per request.

Anyone who can reach the dashboard can post junk tokens, and each refusal was an audit
row: a flood filled the audit trail. Now the first bad token an address sends in a
window is recorded as before (`dashboard.signin_refused`, with the reason), the rest
are counted and written as one `dashboard.signin_refused.repeated` row (the count)
when the window ends. Past `LIMIT` bad tokens in a window the address is answered 429.
A valid link is still honoured then: behind a reverse proxy every visitor shares one
address, and someone else's junk must not lock an operator out. The windows are
per process and in memory; a restart starts them anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.audit import AuditLog
from storage.clock import Clock

WINDOW_SECONDS = 60.0
LIMIT = 10  # bad tokens per address and window before the answer is 429
MAX_ADDRESSES = 10_000  # beyond this many at once, new addresses share one window
CROWD = "(many addresses)"
ACTOR = "dashboard"


@dataclass(slots=True)
class _Window:
    ends: datetime
    refused: int = 0


class SignInThrottle:
    def __init__(self, *, audit: AuditLog, clock: Clock) -> None:
        self._audit = audit
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def refused(self, address: str, reason: str) -> bool:
        """Count a bad token from `address`; True while it is within the limit (403), else 429."""
        now = self._clock.now()
        address = address or "unknown"
        window = self._windows.get(address)
        if window is not None and now >= window.ends:
            self._close(address)
            window = None
        if window is None:
            if len(self._windows) >= MAX_ADDRESSES:
                address = CROWD
            window = self._windows.setdefault(
                address, _Window(ends=now + timedelta(seconds=WINDOW_SECONDS))
            )
        window.refused += 1
        if window.refused == 1:
            self._audit.record(
                ACTOR, "dashboard.signin_refused", "", reason=reason, address=address
            )
        return window.refused <= LIMIT

    def sweep(self, *, everything: bool = False) -> None:
        """Write the summaries of windows that ended (all of them when stopping)."""
        now = self._clock.now()
        for address in [a for a, w in self._windows.items() if everything or now >= w.ends]:
            self._close(address)

    def _close(self, address: str) -> None:
        window = self._windows.pop(address)
        if window.refused > 1:
            self._audit.record(
                ACTOR,
                "dashboard.signin_refused.repeated",
                "",
                address=address,
                count=window.refused - 1,
                seconds=WINDOW_SECONDS,
            )
