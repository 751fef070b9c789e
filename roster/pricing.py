"""What model tokens cost: a price table from config, and the arithmetic (pure).

Prices are per million tokens, as providers publish them. A model not in the table
costs 0.0: unknown is shown as free rather than guessed. A dated model name
(`gpt-4o-mini-2024-07-18`) takes the price of its longest listed prefix (`gpt-4o-mini`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

PER = 1_000_000


class Price(BaseModel):
    """`[prices."gpt-4o-mini"] input = 0.15, output = 0.6` (per million tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)


class PriceTable:
    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(prices or {})
        # Longest first, so the most specific prefix wins.
        self._names = sorted(self._prices, key=len, reverse=True)

    def price(self, model: str) -> Price | None:
        """The price listed for `model`, or for the longest listed prefix of its name."""
        found = self._prices.get(model)
        if found is not None:
            return found
        name = next((n for n in self._names if model.startswith(n)), None)
        return None if name is None else self._prices[name]

    def cost_of(self, model: str, tokens_in: int, tokens_out: int) -> float:
        """The cost of one call, in the table's currency; 0.0 for an unlisted model."""
        price = self.price(model)
        if price is None:
            return 0.0
        return (tokens_in * price.input + tokens_out * price.output) / PER


NO_PRICES = PriceTable()
