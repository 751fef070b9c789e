"""Running summaries: older turns of a long conversation folded into a short text.

An llm agent's prompt holds its instructions, this summary and the recent window of
turns, so a long conversation keeps its thread without the prompt growing without end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from roster.agent import Turn

if TYPE_CHECKING:
    from roster.model_client import ModelClient

SUMMARY_WORDS = 200
INSTRUCTIONS = (
    "You keep the memory of a conversation between a user and an assistant. Merge the "
    "summary so far with the newer turns into one summary for the assistant's later use: "
    "facts, names, decisions, open questions and what the user wants. Leave out greetings "
    f"and repetition. At most {SUMMARY_WORDS} words; answer with the summary only."
)


def summary_prompt(previous: str, turns: Sequence[Turn]) -> list[dict[str, str]]:
    transcript = "\n".join(f"{turn.role}: {turn.content}" for turn in turns)
    body = f"Summary so far:\n{previous or '(none)'}\n\nNewer turns:\n{transcript}"
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": body}]


async def summarise(
    client: ModelClient, model: str, previous: str, turns: Sequence[Turn]
) -> str | None:
    """One model call; None when the model answered nothing (keep the turns as they are)."""
    reply = await client.complete(model, summary_prompt(previous, turns), [])
    return reply.content.strip() or None
