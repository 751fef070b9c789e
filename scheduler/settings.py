"""How the scheduler is tuned: one frozen object, and the margin every re-read uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

SYNC_MARGIN = timedelta(seconds=30)  # re-read recent changes: clocks of processes differ


@dataclass(frozen=True, slots=True)
class Settings:
    timezone: str = "UTC"
    grace: timedelta = timedelta(hours=1)  # older missed runs are reported, not run
    heartbeat_seconds: float = 30.0
    stall: timedelta = timedelta(minutes=2)  # a due run this late means firing stopped
    sync_seconds: float = 2.0
    takeover_seconds: float = 5.0
    # Runs are claimed this long before they are due, so that they start on time.
    claim_ahead: timedelta = timedelta(seconds=1)

    @property
    def silent_after(self) -> timedelta:
        """A leader whose heartbeat is older than this has ended or hangs."""
        return max(self.stall, timedelta(seconds=3 * self.heartbeat_seconds))
