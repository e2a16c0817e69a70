"""Exact offline token counts. Expected numbers are constants computed once with tiktoken's own loader
(``tiktoken.load.load_tiktoken_bpe`` + ``tiktoken_ext.openai_public``) on the genuine encoding files,
not recomputed here; the network is unplugged so a download attempt would fail the test."""

from __future__ import annotations

import logging
import socket
from typing import Any
from unittest import mock

import pytest
import tiktoken
from tiktoken_ext import openai_public

from bot.llm import count_message_tokens, count_tokens, encoding_for_model
from bot.llm import tokens as T

# text -> (o200k_base tokens, cl100k_base tokens)
SAMPLES = {
    "Hello, adventurers!": (5, 4),  # the encodings differ here
    "The goblin snarls: «¡Ataca!» 🐉 1d20+5": (20, 22),
    "antidisestablishmentarianism": (6, 6),
    "  indented\n\nnew lines 12345678 don't": (11, 12),
}

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are the Dungeon Master."},
    {"role": "user", "content": "I sneak past the guard.", "name": "alice"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "roll_dice", "arguments": "{\"expression\": \"1d20+3\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "17"},
]
MESSAGES_O200K, MESSAGES_CL100K = 76, 75


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network unplugged for this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("text", list(SAMPLES))
def test_exact_counts_in_both_encodings(text: str) -> None:
    o200k, cl100k = SAMPLES[text]
    assert count_tokens(text, "gpt-4o-mini") == o200k
    assert count_tokens(text, "gpt-4") == cl100k


def test_message_list_counts_cookbook_overhead_and_tool_calls() -> None:
    assert count_message_tokens(MESSAGES, "gpt-4o") == MESSAGES_O200K
    assert count_message_tokens(MESSAGES, "gpt-3.5-turbo") == MESSAGES_CL100K
    simple = [{"role": "user", "content": "Hello, adventurers!"}]
    assert count_message_tokens(simple, "gpt-4o-mini") == 3 + 3 + 1 + 5  # priming + framing + role + text
    named = [{"role": "user", "content": "Hello, adventurers!", "name": "bob"}]
    assert count_message_tokens(named, "gpt-4o-mini") == 3 + 3 + 1 + 5 + 1 + 1


@pytest.mark.parametrize("model,encoding", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"), ("gpt-4o-mini", "o200k_base"),
    ("gpt-4.1-nano", "o200k_base"), ("o1", "o200k_base"), ("o3-mini", "o200k_base"), ("o4-mini", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
    ("openai/gpt-4-turbo", "cl100k_base"),
])
def test_model_names_map_to_encodings(model: str, encoding: str) -> None:
    assert encoding_for_model(model).name == encoding


def test_unknown_model_falls_back_with_one_notice(caplog: pytest.LogCaptureFixture) -> None:
    T._warned.discard("llama3.1:8b-test")
    with caplog.at_level(logging.INFO, logger="bot.llm.tokens"):
        assert encoding_for_model("llama3.1:8b-test").name == "o200k_base"
        assert count_tokens("Hello, adventurers!", "llama3.1:8b-test") == 5
    assert sum("llama3.1:8b-test" in r.getMessage() for r in caplog.records) == 1


def test_encodings_are_cached_and_match_tiktoken_definitions() -> None:
    assert T.get_encoding("o200k_base") is T.get_encoding("o200k_base")
    for name in ("o200k_base", "cl100k_base"):
        ours = T.get_encoding(name)
        with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *a, **k: {}):
            spec = getattr(openai_public, name)()
        assert ours._pat_str == spec["pat_str"]
        assert ours._special_tokens == spec["special_tokens"]
        assert isinstance(ours, tiktoken.Encoding)


def test_corrupt_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(T.EXPECTED_SHA256, "cl100k_base", "0" * 64)
    with pytest.raises(T.TokenizerDataError, match="sha256"):
        T._load_ranks("cl100k_base")
    with pytest.raises(KeyError):
        T.get_encoding("p50k_base")
