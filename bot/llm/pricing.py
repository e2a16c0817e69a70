"""Model prices in US dollars per million tokens, and the cost of a call.

The default table is ``prices.json`` beside this module; its ``source`` and ``as_of`` fields say where
and when the prices were taken (OpenAI's API pricing page). Admins add or override prices for other
endpoints (OpenRouter models, new models) with ``LLM_PRICES_JSON``:
``{"model": {"input": 0.5, "cached_input": 0.25, "output": 1.5}}``.

Dated snapshot names resolve to their family (``gpt-4o-2024-08-06`` → ``gpt-4o``) and provider
prefixes are ignored (``openai/gpt-4o`` → ``gpt-4o``). An unknown model costs ``None``, never 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from bot.errors import UserInputError
from bot.llm.types import Usage

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per 1,000,000 tokens: prompt input, cached prompt input, and output."""

    input: float
    cached_input: float
    output: float


class PriceTable:
    """Prices by model name. ``source`` and ``as_of`` describe where the prices come from."""

    def __init__(self, prices: dict[str, ModelPrice], *, source: str = "", as_of: str = "") -> None:
        self.prices = dict(prices)
        self.source = source
        self.as_of = as_of

    @staticmethod
    def _parse(models: dict[str, Any], where: str) -> dict[str, ModelPrice]:
        out: dict[str, ModelPrice] = {}
        for name, p in models.items():
            try:
                price = ModelPrice(float(p["input"]), float(p.get("cached_input", p["input"])), float(p["output"]))
            except (KeyError, TypeError, ValueError):
                raise UserInputError(f"{where}: price for {name!r} needs numbers 'input' and 'output' "
                                     "(and optionally 'cached_input'), US dollars per million tokens") from None
            if min(price.input, price.cached_input, price.output) < 0:
                raise UserInputError(f"{where}: prices for {name!r} must not be negative")
            out[name.strip().lower()] = price
        return out

    @classmethod
    def default(cls) -> PriceTable:
        """The shipped table (``prices.json``)."""
        data = json.loads(resources.files("bot.llm").joinpath("prices.json").read_text(encoding="utf-8"))
        return cls(cls._parse(data["models"], "prices.json"), source=data["source"], as_of=data["as_of"])

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        """A table from JSON: ``{"model": {"input": .., "cached_input": .., "output": ..}}`` or the
        ``prices.json`` shape with a ``models`` key. Raises ``UserInputError`` for bad JSON."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"LLM_PRICES_JSON is not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise UserInputError("LLM_PRICES_JSON must be a JSON object of model prices")
        models = data.get("models", data)
        return cls(cls._parse(models, "LLM_PRICES_JSON"), source="LLM_PRICES_JSON")

    def with_overrides(self, text: str | None) -> PriceTable:
        """This table with prices from JSON text added or replaced (None/empty: unchanged)."""
        if not text or not text.strip():
            return self
        extra = PriceTable.from_json(text)
        return PriceTable({**self.prices, **extra.prices}, source=f"{self.source}; overrides from LLM_PRICES_JSON",
                          as_of=self.as_of)

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model``: exact name, else without provider prefix, else its family."""
        name = model.strip().lower()
        for candidate in (name, name.rsplit("/", 1)[-1]):
            if candidate in self.prices:
                return self.prices[candidate]
            family = _SNAPSHOT.sub("", candidate)
            if family in self.prices:
                return self.prices[family]
        return None

    def cost(self, model: str, usage: Usage) -> float | None:
        """US dollars for ``usage`` on ``model``: uncached prompt tokens at the input price, cached
        ones at the cached price, completion tokens at the output price. None if unpriced."""
        price = self.price_for(model)
        if price is None:
            return None
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        return ((usage.prompt_tokens - cached) * price.input + cached * price.cached_input
                + usage.completion_tokens * price.output) / 1_000_000
