"""The circuit breaker: an agent that keeps failing is switched off before it does more harm."""

from __future__ import annotations

from collections import Counter


class Breaker:
    def __init__(self, threshold: int) -> None:
        self._threshold = threshold  # 0: never trips
        self._failures: Counter[str] = Counter()

    def record(self, agent: str, *, ok: bool) -> bool:
        """Count a run's outcome; True exactly when this failure trips the breaker."""
        if ok:
            self._failures.pop(agent, None)
            return False
        self._failures[agent] += 1
        return self._threshold > 0 and self._failures[agent] == self._threshold

    def reset(self, agent: str) -> None:
        self._failures.pop(agent, None)
