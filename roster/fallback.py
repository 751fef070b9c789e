"""One model call with an agent's fallback model, priced: what llm agents and the router use."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from roster.agent import Usage
from roster.errors import ModelError, StreamBroken
from roster.pricing import PriceTable

if TYPE_CHECKING:
    from roster.llm import Message, ModelClient, Reply

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]


async def complete(
    client: ModelClient,
    *,
    model: str,
    fallback: str | None,
    messages: list[Message],
    tools: list[Message],
    prices: PriceTable,
    on_text: OnText | None = None,
) -> Reply:
    """Ask `model`; when it still fails after the client's retries, ask `fallback` once.

    With `on_text` the answer streams (`on_text(text so far)`). A stream that fails
    before any text was shown is asked once more; one cut off after text was shown is
    not (the person saw it): its `StreamBroken` goes up with that text.
    The reply's usage carries the cost of the model that answered.
    """
    try:
        return _priced(await _ask(client, model, messages, tools, on_text), model, prices)
    except StreamBroken as exc:
        if exc.shown:
            raise
        log.warning("model %s: the stream broke twice before any text", model)
        if not fallback:
            raise
    except ModelError as exc:
        if not fallback:
            raise
        log.warning("model %s failed (%s); trying fallback model %s", model, exc, fallback)
    return _priced(await _ask(client, fallback, messages, tools, on_text), fallback, prices)


async def _ask(
    client: ModelClient,
    model: str,
    messages: list[Message],
    tools: list[Message],
    on_text: OnText | None,
) -> Reply:
    if on_text is None:
        return await client.complete(model, messages, tools)
    try:
        return await client.stream(model, messages, tools, on_text)
    except StreamBroken as exc:
        if exc.shown:  # the person saw part of it: an answer asked again would differ
            raise
        log.warning("the stream from %s broke before any text (%s); asking again", model, exc)
    return await client.stream(model, messages, tools, on_text)


def _priced(reply: Reply, model: str, prices: PriceTable) -> Reply:
    used = reply.usage
    cost = prices.cost_of(model, used.tokens_in, used.tokens_out)
    return replace(reply, usage=Usage(used.tokens_in, used.tokens_out, cost))
