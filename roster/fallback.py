"""One model call down an agent's chain of models, priced: what llm agents and the router use.

The chain is the agent's model (or the one its chat picked) and then its fallbacks
(`roster.providers`). The next model is asked only when one is rate-limited, failing
(5xx), too slow or out of reach, after its client's own retries: a refusal (400, a wrong
key) would be the same on the next model of that provider, and hides a mistake.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from roster.agent import Usage
from roster.errors import ModelUnavailable
from roster.pricing import PriceTable

if TYPE_CHECKING:
    from roster.llm import Message, Reply
    from roster.providers import Target

log = logging.getLogger(__name__)


async def complete(
    chain: Sequence[Target],
    *,
    messages: list[Message],
    tools: list[Message],
    prices: PriceTable,
) -> Reply:
    """Ask the chain's models in order until one answers; the last one's failure is raised.

    The reply names the model that answered and carries its cost; `fell_back` says what
    failed before it.
    """
    failures: list[str] = []
    for index, target in enumerate(chain):
        try:
            reply = await target.client.complete(target.name.model, messages, tools)
        except ModelUnavailable as exc:
            if index + 1 == len(chain):
                raise
            following = chain[index + 1].label
            log.warning(
                "model %s failed (%s); trying fallback model %s", target.label, exc, following
            )
            failures.append(f"{target.label}: {_first_sentence(exc)}")
            continue
        priced = _priced(reply, target, prices)
        return replace(priced, model=target.label, fell_back="; ".join(failures))
    raise ValueError("an empty chain of models")  # a spec always has its own model


def _priced(reply: Reply, target: Target, prices: PriceTable) -> Reply:
    """Priced by the model that answered: `[prices."<provider>:<model>"]`, else by model."""
    used = reply.usage
    name = target.label if prices.price(target.label) is not None else target.name.model
    cost = prices.cost_of(name, used.tokens_in, used.tokens_out)
    return replace(reply, usage=Usage(used.tokens_in, used.tokens_out, cost))


def _first_sentence(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("The model API ").rstrip(".")[:120]
