"""The converse step: the model's tool rounds, then its narration.

The model may call the game's tools (dice, sheets) for at most ``rounds`` rounds; each call is
performed by code (``bot.game.tools``) and its result sent back. The last call offers no tools, and
its prompt folds the tool rounds into plain text, because some endpoints refuse tool history without
tool definitions. Every model call's ``ChatResult`` is kept for the usage ledger, failed turn or not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.game.ports import ModelPort
from bot.game.streaming import NarrationStream
from bot.game.tools import TOOL_SCHEMAS, ToolContext, run_tool
from bot.llm.errors import LLMError
from bot.llm.types import ChatResult
from bot.models import GuildConfig


@dataclass
class Conversation:
    """What one turn's talk with the model produced.

    Attributes:
        text: the narration, stripped ("" when the model wrote nothing).
        calls: every model call's result, in order (for usage and budgets).
        model_s: seconds spent waiting for the model (``time.perf_counter``).
        told: the turn failed after its narration was streamed, and the streamed message was turned
            into the notice that says why (so nobody tells the table twice).
    """

    text: str = ""
    calls: list[ChatResult] = field(default_factory=list)
    model_s: float = 0.0
    told: bool = False


async def converse(model: ModelPort, prompt: list[dict[str, Any]], tools: ToolContext, config: GuildConfig, *,
                   rounds: int, conversation: Conversation, narration: NarrationStream | None = None) -> str:
    """Call the model with tools for at most ``rounds`` rounds, then once without tools.

    Args:
        model: the model client.
        prompt: the turn's messages (not modified).
        tools: the turn's tool context (rolls and sheet changes are appended to it).
        config: the server's options (model name, temperature, longest reply in tokens).
        rounds: the most tool rounds before the model must narrate.
        conversation: receives every call and the time spent (so a failure keeps them).
        narration: when given, every call is streamed into it (``bot.game.streaming``): the table
            reads the narration as it is written; text the model wrote before calling tools is
            taken back, and a stream the guard stopped is the narration as it stands.
    Returns:
        The narration, stripped; "" when the model wrote none.
    Raises:
        ``bot.llm.errors.LLMError`` (a ``BotError``) for endpoint trouble.
    """
    messages = list(prompt)
    base_len = len(messages)
    text = ""
    for round_no in range(rounds + 1):
        with_tools = round_no < rounds
        if not with_tools and len(messages) > base_len:
            messages = without_tool_rounds(messages[:base_len], tools)
        started = time.perf_counter()
        try:
            result = await model.chat(messages, model=config.model, temperature=config.temperature,
                                      max_tokens=config.max_tokens, tools=TOOL_SCHEMAS if with_tools else None,
                                      on_text=narration.feed if narration is not None else None)
        except LLMError as exc:
            if exc.partial is not None:  # a stream that broke after text: its tokens still count
                conversation.calls.append(exc.partial)
            raise
        finally:
            conversation.model_s += time.perf_counter() - started
        conversation.calls.append(result)
        if result.tool_calls and with_tools and not (narration is not None and narration.stopped):
            if narration is not None:
                await narration.reset()
            messages.append(result.assistant_message())
            for call in result.tool_calls:
                output = await run_tool(tools, call.name, call.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
            continue
        text = (result.text or "").strip()
        break
    conversation.text = text
    return text


def without_tool_rounds(base: list[dict[str, Any]], tools: ToolContext) -> list[dict[str, Any]]:
    """The prompt for the last, tool-free call: the tool rounds folded into the last user message as
    plain text, so endpoints that refuse tool history without tool definitions still answer."""
    lines = [f"- {name}({args}) -> {out}" for name, args, out in tools.calls]
    last = dict(base[-1])
    last["content"] = (f"{last['content']}\n\n[Table]: The DM already used these tools this turn (results "
                       "are real and shown to the table):\n" + "\n".join(lines)
                       + "\nNow narrate the outcome without calling any more tools.")
    return [*base[:-1], last]
