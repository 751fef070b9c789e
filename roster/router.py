"""Which agent should answer a free-text message: the router model, or a local guess.

The router is an llm agent marked `router = true`. It sees the roster (names and
descriptions) and either calls `route(agent, reason)`, calls `ask_which(agents)` when
it cannot tell, or answers the message itself with plain text. Anything else it sends
(an unknown agent, arguments that are not JSON, an empty answer) is junk, and the
caller falls back to `guess`, which needs no model: it scores agents by the words of
their name, `keywords` and description.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roster.agent import Usage
from roster.fallback import complete
from roster.model_client import Message, Reply
from roster.pricing import PriceTable
from roster.providers import Providers
from roster.spec import LLMAgentSpec

MAX_CHOICES = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HandOff:
    agent: str
    reason: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Answer:
    """The router answered the message itself."""

    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Unsure:
    candidates: tuple[str, ...]
    reason: str = ""
    usage: Usage = field(default_factory=Usage)


Decision = HandOff | Answer | Unsure


@dataclass(frozen=True, slots=True)
class Junk:
    """The model's answer could not be used; `usage` is still spent."""

    why: str
    usage: Usage = field(default_factory=Usage)


# --- the router model ---------------------------------------------------------------

ROUTE = {
    "type": "function",
    "function": {
        "name": "route",
        "description": "Hand the message to the one agent that should answer it.",
        "parameters": {
            "type": "object",
            "properties": {"agent": {"type": "string"}, "reason": {"type": "string"}},
            "required": ["agent"],
        },
    },
}
ASK_WHICH = {
    "type": "function",
    "function": {
        "name": "ask_which",
        "description": "When unsure: let the user pick among these agents.",
        "parameters": {
            "type": "object",
            "properties": {"agents": {"type": "array", "items": {"type": "string"}}},
            "required": ["agents"],
        },
    },
}
INSTRUCTIONS = (
    "You route operator messages to agents. Agents:\n{roster}\n"
    "Call route(agent, reason) with the agent that should answer. If two or more fit "
    "and you cannot tell, call ask_which(agents). If the message is small talk or a "
    "question about the agents themselves, answer it yourself in plain text."
)


class ModelRouter:
    def __init__(self, spec: LLMAgentSpec, *, providers: Providers, prices: PriceTable) -> None:
        self.spec = spec
        self._providers = providers
        self._prices = prices

    @property
    def name(self) -> str:
        return self.spec.name

    def unavailable_reason(self) -> str | None:
        return None if self.spec.enabled else "disabled in config"

    async def decide(self, text: str, candidates: Sequence[Candidate]) -> Decision | Junk:
        """One model call (raises `ModelError`); the answer read strictly."""
        reply = await complete(
            self._providers.chain(self.spec),
            messages=self._messages(text, candidates),
            tools=[ROUTE, ASK_WHICH],
            prices=self._prices,
        )
        return read_reply(reply, {c.name for c in candidates})

    def _messages(self, text: str, candidates: Sequence[Candidate]) -> list[Message]:
        roster = "\n".join(f"- {c.name}: {c.description or '(no description)'}" for c in candidates)
        system = INSTRUCTIONS.format(roster=roster)
        if self.spec.instructions:
            system = f"{self.spec.instructions}\n\n{system}"
        return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def read_reply(reply: Reply, names: set[str]) -> Decision | Junk:
    """Turn the model's reply into a decision; anything unexpected is `Junk`."""
    usage = reply.usage
    if not reply.tool_calls:
        text = reply.content.strip()
        return Answer(text, usage) if text else Junk("an empty answer", usage)
    call = reply.tool_calls[0]
    arguments = _json_object(call.arguments)
    if arguments is None:
        return Junk(f"{call.name} arguments are not a JSON object", usage)
    if call.name == "route":
        agent = str(arguments.get("agent", "")).strip().lower()
        if agent not in names:
            return Junk(f"route names no agent of the roster ({agent[:40]!r})", usage)
        return HandOff(agent, str(arguments.get("reason", ""))[:200], usage)
    if call.name == "ask_which":
        raw = arguments.get("agents")
        picked = [str(a).strip().lower() for a in raw] if isinstance(raw, list) else []
        known = tuple(dict.fromkeys(a for a in picked if a in names))[:MAX_CHOICES]
        return Unsure(known, "the router could not tell", usage) if known else Junk("", usage)
    return Junk(f"an unknown call {call.name[:40]!r}", usage)


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- the local guess ----------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9][a-z0-9_-]*")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "run",
        "runs",
        "that",
        "the",
        "this",
        "to",
        "up",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
        "you",
        "your",
    ]
)
NAME_POINTS = 5
KEYWORD_POINTS = 3
DESCRIPTION_POINTS = 1


@dataclass(frozen=True, slots=True)
class Guess:
    """The agent picked, or None with the candidates to ask about; `matched` says why."""

    agent: str | None
    candidates: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()


def guess(text: str, candidates: Sequence[Candidate]) -> Guess:
    """Score agents by name, keywords and description words; pick only a clear winner."""
    if len(candidates) == 1:
        return Guess(candidates[0].name, (candidates[0].name,))
    words = _words(text)
    scored = [(_score(c, words, text.lower()), c.name) for c in candidates]
    ranked = sorted((s for s in scored if s[0][0] > 0), key=lambda s: -s[0][0])
    if not ranked:
        return Guess(None, ())
    (top, matched), name = ranked[0]
    second = ranked[1][0][0] if len(ranked) > 1 else 0
    if second == 0 or (top >= 2 * second and top - second >= 2):
        return Guess(name, (name,), matched)
    return Guess(None, tuple(n for _, n in ranked[:MAX_CHOICES]))


def _score(candidate: Candidate, words: set[str], lowered: str) -> tuple[int, tuple[str, ...]]:
    points = 0
    matched: list[str] = []
    if candidate.name in words:
        points += NAME_POINTS
        matched.append(candidate.name)
    for keyword in candidate.keywords:
        if _has_phrase(lowered, keyword.lower()):
            points += KEYWORD_POINTS
            matched.append(keyword)
    stems = {_stem(w) for w in words if w not in _STOP and len(w) >= 3}
    for word in sorted(_words(candidate.description) - _STOP):
        if len(word) >= 3 and _stem(word) in stems and word not in matched:
            points += DESCRIPTION_POINTS
            matched.append(word)
    return points, tuple(matched)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _stem(word: str) -> str:
    """A crude stem: `checks`, `checking` and `check` meet at their first five letters."""
    return word.rstrip("s")[:5]


def _has_phrase(lowered: str, phrase: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", lowered) is not None
