"""One model call with an agent's fallback model, priced: what llm agents and the router use."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from roster.agent import Usage
from roster.errors import ModelError
from roster.pricing import PriceTable

if TYPE_CHECKING:
    from roster.llm import Message, ModelClient, Reply

log = logging.getLogger(__name__)


async def complete(
    client: ModelClient,
    *,
    model: str,
    fallback: str | None,
    messages: list[Message],
    tools: list[Message],
    prices: PriceTable,
) -> Reply:
    """Ask `model`; when it still fails after the client's retries, ask `fallback` once.

    The reply's usage carries the cost of the model that answered.
    """
    try:
        return _priced(await client.complete(model, messages, tools), model, prices)
    except ModelError as exc:
        if not fallback:
            raise
        log.warning("model %s failed (%s); trying fallback model %s", model, exc, fallback)
    return _priced(await client.complete(fallback, messages, tools), fallback, prices)


def _priced(reply: Reply, model: str, prices: PriceTable) -> Reply:
    used = reply.usage
    cost = prices.cost_of(model, used.tokens_in, used.tokens_out)
    return replace(reply, usage=Usage(used.tokens_in, used.tokens_out, cost))
