"""Per-user rate limit: a sliding window of the last minute."""

from __future__ import annotations

import time
from collections import defaultdict, deque

WINDOW_SECONDS = 60.0


class RateLimit:
    def __init__(self, per_minute: int) -> None:
        self._limit = per_minute  # 0: unlimited
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, user: str, now: float | None = None) -> bool:
        if self._limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        seen = self._seen[user]
        while seen and now - seen[0] >= WINDOW_SECONDS:
            seen.popleft()
        if len(seen) >= self._limit:
            return False
        seen.append(now)
        return True
