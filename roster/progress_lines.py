"""Progress of a coding agent: one line per tool use, the latest few kept."""

from __future__ import annotations

from collections import deque

KEPT_LINES = 8
LINE_CHARS = 200


class ProgressLines:
    def __init__(self, kept: int = KEPT_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=kept)

    def add(self, line: str) -> None:
        self._lines.append(line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…")

    def text(self) -> str:
        return "\n".join(self._lines)
