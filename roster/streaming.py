"""A streamed chat completion put back together, chunk by chunk.

The API streams an answer as chunks: text deltas, tool calls in pieces (their id and
name first, the arguments in parts, by index), then a chunk with the token counts.
`Stream.add` takes each chunk's JSON and returns the text so far when it grew, which
the runner shows while the answer is being written; what the run keeps is the whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class Stream:
    parts: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    tokens: tuple[int, int] = (0, 0)
    chunks: int = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, chunk: Any) -> bool:
        """Take one chunk; True when the text grew. ValueError for a chunk of the wrong shape."""
        if not isinstance(chunk, dict):
            raise ValueError("a chunk is not a JSON object")
        self.chunks += 1
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.tokens = (
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
            )
        grew = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                if not isinstance(content, str):
                    raise ValueError("content is not text")
                self.parts.append(content)
                grew = True
            for piece in delta.get("tool_calls") or ():
                self._call_piece(piece)
        return grew

    def _call_piece(self, piece: dict[str, Any]) -> None:
        call = self.calls.setdefault(int(piece.get("index") or 0), _Call())
        call.id = piece.get("id") or call.id
        function = piece.get("function") or {}
        call.name = function.get("name") or call.name
        if function.get("arguments"):
            call.arguments.append(str(function["arguments"]))

    def tool_calls(self) -> list[tuple[str, str, str]]:
        """(id, name, arguments) of each complete call, in order."""
        return [
            (call.id, call.name, "".join(call.arguments))
            for _, call in sorted(self.calls.items())
            if call.id and call.name
        ]
