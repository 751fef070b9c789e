"""The tail of a child's output, scrubbed before it is cut.

A secret's value cut in two is no longer found by the scrubber: the half after the cut
would leak into chat and the stored run. So output is scrubbed first and cut after.
While it streams in, the newest `OPEN_CHARS` stay open, so that a value split between
two reads is still found whole once its rest arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

OPEN_CHARS = 16_384  # longer than any value a scrubber knows (a PEM key is ~3,000)

Redact = Callable[[str], str]


def scrubbed_tail(text: str, limit: int, redact: Redact) -> str:
    """The last `limit` characters of `text` once scrubbed."""
    return redact(text)[-limit:]


class ScrubbedTail:
    """Streamed output, scrubbed, of which the last `limit` characters are kept."""

    def __init__(self, limit: int, redact: Redact) -> None:
        self._limit = limit
        self._redact = redact
        self._settled: deque[str] = deque()  # scrubbed, never looked at again
        self._settled_chars = 0
        self._open = ""  # scrubbed, but a value may begin near its end

    def add(self, text: str) -> None:
        opened = self._redact(self._open + text)
        if len(opened) > 2 * OPEN_CHARS:
            cut = len(opened) - OPEN_CHARS
            self._settle(opened[:cut])
            opened = opened[cut:]
        self._open = opened

    def text(self) -> str:
        return ("".join(self._settled) + self._open)[-self._limit :]

    def _settle(self, text: str) -> None:
        self._settled.append(text)
        self._settled_chars += len(text)
        while self._settled and self._settled_chars - len(self._settled[0]) >= self._limit:
            self._settled_chars -= len(self._settled.popleft())
