"""One model call down an agent's chain of models, priced: what llm agents and the router use.

The chain is the agent's model (or the one its chat picked) and then its fallbacks
(`roster.providers`). The next model is asked only when one is rate-limited, failing
(5xx), too slow or out of reach, after its client's own retries: a refusal (400, a wrong
key) would be the same on the next model of that provider, and hides a mistake.

A streamed answer (`on_text`) that breaks before any text was shown is asked of the
same model once more, and then of the next; one cut off after text was shown is not
asked again anywhere (the person saw it): its `StreamBroken` goes up with that text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from roster.agent import Usage
from roster.errors import ModelUnavailable, StreamBroken
from roster.pricing import PriceTable

if TYPE_CHECKING:
    from roster.model_client import Message, Reply
    from roster.providers import Target

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]


async def complete(
    chain: Sequence[Target],
    *,
    messages: list[Message],
    tools: list[Message],
    prices: PriceTable,
    on_text: OnText | None = None,
) -> Reply:
    """Ask the chain's models in order until one answers; the last one's failure is raised.

    With `on_text` the answer streams (`on_text(text so far)`). The reply names the
    model that answered and carries its cost; `fell_back` says what failed before it.
    """
    failures: list[str] = []
    for index, target in enumerate(chain):
        try:
            reply = await _ask(target, messages, tools, on_text)
        except StreamBroken as exc:
            if exc.shown or index + 1 == len(chain):
                raise
            _falling_back(target, exc, chain[index + 1], failures)
            continue
        except ModelUnavailable as exc:
            if index + 1 == len(chain):
                raise
            _falling_back(target, exc, chain[index + 1], failures)
            continue
        priced = _priced(reply, target, prices)
        return replace(priced, model=target.label, fell_back="; ".join(failures))
    raise ValueError("an empty chain of models")  # a spec always has its own model


async def _ask(
    target: Target, messages: list[Message], tools: list[Message], on_text: OnText | None
) -> Reply:
    client, model = target.client, target.name.model
    if on_text is None:
        return await client.complete(model, messages, tools)
    try:
        return await client.stream(model, messages, tools, on_text)
    except StreamBroken as exc:
        if exc.shown:  # the person saw part of it: an answer asked again would differ
            raise
        log.warning("the stream from %s broke before any text (%s); asking again", model, exc)
    return await client.stream(model, messages, tools, on_text)


def _falling_back(failed: Target, exc: Exception, following: Target, failures: list[str]) -> None:
    log.warning(
        "model %s failed (%s); trying fallback model %s", failed.label, exc, following.label
    )
    failures.append(f"{failed.label}: {_first_sentence(exc)}")


def _priced(reply: Reply, target: Target, prices: PriceTable) -> Reply:
    """Priced by the model that answered: `[prices."<provider>:<model>"]`, else by model."""
    used = reply.usage
    name = target.label if prices.price(target.label) is not None else target.name.model
    cost = prices.cost_of(name, used.tokens_in, used.tokens_out)
    return replace(reply, usage=Usage(used.tokens_in, used.tokens_out, cost))


def _first_sentence(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("The model API ").rstrip(".")[:120]
