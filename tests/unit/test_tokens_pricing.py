"""Exact offline token counts and cost arithmetic. Expected counts are constants from tiktoken's own
loader (computed once with tiktoken.get_encoding on the genuine files), not recomputed here."""

from __future__ import annotations

import socket

import pytest

from bot.llm import PriceTable, Usage, count_message_tokens, count_tokens, encoding_for_model
from bot.llm.limiter import RateLimiter
from bot.llm.tokens import encoding_name_for_model

SAMPLES = {
    "Hello, adventurers!": (5, 4),
    "The goblin snarls: «¡Ataca!» 🐉 1d20+5": (20, 22),
    "antidisestablishmentarianism": (6, 6),
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network unplugged for this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("text", list(SAMPLES))
def test_exact_counts_in_both_encodings_offline(text: str) -> None:
    o200k, cl100k = SAMPLES[text]
    assert count_tokens(text, "gpt-4o-mini") == o200k
    assert count_tokens(text, "gpt-4") == cl100k


def test_model_names_map_to_encodings() -> None:
    assert encoding_name_for_model("gpt-4o-2024-08-06") == "o200k_base"
    assert encoding_name_for_model("o3-mini") == "o200k_base"
    assert encoding_name_for_model("gpt-4.1-nano") == "o200k_base"
    assert encoding_name_for_model("gpt-3.5-turbo") == "cl100k_base"
    assert encoding_name_for_model("openai/gpt-4-turbo") == "cl100k_base"
    assert encoding_name_for_model("llama3.1:8b") == "o200k_base"  # unknown: fallback
    assert encoding_for_model("llama3.1:8b").name == "o200k_base"


def test_message_list_overhead() -> None:
    messages = [{"role": "system", "content": "Hello, adventurers!"}, {"role": "user", "content": "Hi", "name": "bob"}]
    # 3 priming + per message (3 + role + content) [+1 + name tokens]
    expected = 3 + (3 + 1 + 5) + (3 + 1 + 1 + 1 + 1)
    assert count_message_tokens(messages, "gpt-4o-mini") == expected


def test_cost_arithmetic_with_cached_tokens_and_snapshots() -> None:
    table = PriceTable.default()
    assert table.source and table.as_of
    usage = Usage(prompt_tokens=10_000, completion_tokens=2_000, cached_prompt_tokens=4_000)
    # gpt-4o: 6,000 x $2.50 + 4,000 x $1.25 + 2,000 x $10.00 per million = $0.04
    assert table.cost("gpt-4o-2024-08-06", usage) == pytest.approx(0.04)
    assert table.cost("gpt-4.1-mini", Usage(1_000_000, 1_000_000, 0)) == pytest.approx(2.0)
    assert table.cost("llama3.1", usage) is None  # unknown: None, never 0
    for model in ("gpt-4o", "gpt-4o-mini", "o1", "o1-mini", "o3-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"):
        assert table.price_for(model) is not None


def test_admin_price_overrides() -> None:
    table = PriceTable.default().with_overrides('{"meta-llama/llama-3.1-70b": {"input": 0.12, "output": 0.3},'
                                                ' "gpt-4o": {"input": 1, "cached_input": 0.5, "output": 2}}')
    assert table.cost("meta-llama/llama-3.1-70b", Usage(1_000_000, 0, 0)) == pytest.approx(0.12)
    assert table.price_for("gpt-4o").output == 2  # type: ignore[union-attr]
    from bot.errors import UserInputError

    with pytest.raises(UserInputError):
        PriceTable.default().with_overrides("{not json")
    with pytest.raises(UserInputError):
        PriceTable.default().with_overrides('{"m": {"input": -1, "output": 1}}')


def test_rate_limiter_waits_for_the_window() -> None:
    now = [0.0]
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=1000, clock=lambda: now[0])
    assert limiter.delay_for(100, now[0]) == 0
    limiter._events.extend([(0.0, 100), (10.0, 100)])
    now[0] = 20.0
    assert limiter.delay_for(100, now[0]) == pytest.approx(40.0)  # third request waits until t=60
    now[0] = 61.0
    assert limiter.delay_for(100, now[0]) == 0  # the first fell out of the window
    limiter._events.clear()
    limiter._events.append((61.0, 900))
    assert limiter.delay_for(200, 62.0) == pytest.approx(59.0)  # tokens per minute
