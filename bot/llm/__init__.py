"""The model client package: an async OpenAI-compatible wrapper with one retry layer, exact offline
token counts and cost tracking. Imports nothing from discord."""

from __future__ import annotations

from bot.llm.client import (
    EndpointCheck,
    LLMClient,
    ModelTotals,
    is_reasoning_model,
    validate_api_key,
    validate_base_url,
)
from bot.llm.errors import LLMError
from bot.llm.pricing import ModelPrice, PriceTable
from bot.llm.tokens import count_message_tokens, count_tokens, encoding_for_model
from bot.llm.types import ChatResult, ToolCall, Usage

__all__ = ["ChatResult", "EndpointCheck", "LLMClient", "LLMError", "ModelPrice", "ModelTotals",
           "PriceTable", "ToolCall", "Usage", "count_message_tokens", "count_tokens", "encoding_for_model",
           "is_reasoning_model", "validate_api_key", "validate_base_url"]
