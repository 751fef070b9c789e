"""What the fake OpenAI server (`tests/fakes/openai_server`) was asked."""

from __future__ import annotations

from tests.fakes.openai_server import FakeOpenAI


def tool_results(server: FakeOpenAI, model: str | None = None) -> list[str]:
    """What the tools answered, as the last request (of `model`, if given) shows it."""
    requests = [r for r in server.requests if model is None or r["model"] == model]
    return [m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"]
