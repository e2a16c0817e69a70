"""Price table and cost arithmetic (US dollars; prices per million tokens)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.config import Settings
from bot.errors import UserInputError
from bot.llm import ModelPrice, PriceTable, Usage


def test_shipped_table_has_source_date_and_prices() -> None:
    table = PriceTable.default()
    assert "pricing" in table.source.lower()
    assert date.fromisoformat(table.as_of) <= date.today()  # a real date, not one in the future
    assert table.prices  # not empty
    for model, price in table.prices.items():
        assert price.input >= 0 and price.output >= 0, model
        assert 0 <= price.cached_input <= price.input, model  # a cached prompt never costs more
        # names are looked up case- and space-insensitively
        assert table.price_for(f"  {model.upper()} ") == price, model
    default_model = Settings.model_fields["dm_model"].default
    assert table.price_for(default_model) is not None  # out of the box, the DM's spend is priced


@pytest.mark.parametrize("model,family", [("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
                                          ("o3-mini-2025-01-31", "o3-mini"), ("gpt-4.1-2025-04-14", "gpt-4.1"),
                                          ("openai/gpt-4o", "gpt-4o"), ("GPT-4o-Mini", "gpt-4o-mini")])
def test_snapshots_and_prefixes_resolve_to_family(model: str, family: str) -> None:
    table = PriceTable.default()
    assert table.price_for(model) == table.price_for(family) is not None


def test_cost_arithmetic() -> None:
    table = PriceTable.default()
    usage = Usage(prompt_tokens=10_000, completion_tokens=2_000, cached_prompt_tokens=4_000)
    # gpt-4o: 6,000 x 2.50 + 4,000 x 1.25 + 2,000 x 10.00, per million = $0.04
    assert table.cost("gpt-4o-2024-08-06", usage) == pytest.approx(0.04)
    # gpt-4o-mini, no cache: 1,000 x 0.15 + 500 x 0.60, per million
    assert table.cost("gpt-4o-mini", Usage(1_000, 500)) == pytest.approx(0.00045)
    assert table.cost("gpt-4.1-mini", Usage(1_000_000, 1_000_000)) == pytest.approx(2.0)
    assert table.cost("o1", Usage(0, 0)) == 0.0


def test_unknown_model_costs_none_never_zero() -> None:
    table = PriceTable.default()
    assert table.price_for("llama3.1:8b") is None
    assert table.cost("llama3.1:8b", Usage(100, 100)) is None


def test_overrides_and_bad_json() -> None:
    table = PriceTable.default().with_overrides(
        '{"meta-llama/llama-3.1-70b": {"input": 0.12, "output": 0.3}, '
        '"gpt-4o": {"input": 1, "cached_input": 0.5, "output": 2}}')
    assert table.cost("meta-llama/llama-3.1-70b", Usage(1_000_000, 0)) == pytest.approx(0.12)
    llama = table.price_for("meta-llama/llama-3.1-70b")
    assert llama is not None and llama.cached_input == 0.12
    assert table.price_for("gpt-4o") == ModelPrice(1.0, 0.5, 2.0)
    assert PriceTable.default().with_overrides(None).price_for("gpt-4o") == ModelPrice(2.5, 1.25, 10.0)
    assert PriceTable.from_json('{"x": {"input": 1, "output": 2}}').price_for("x") == ModelPrice(1, 1, 2)
    for bad in ("{not json", "[1]", '{"m": {"input": -1, "output": 1}}', '{"m": {"output": 1}}'):
        with pytest.raises(UserInputError):
            PriceTable.default().with_overrides(bad)
