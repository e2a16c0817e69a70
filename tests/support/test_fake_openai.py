"""Checks of the test harness itself: the scripted server answers the real openai client as scripted."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.fake_openai import Error, FakeOpenAI, Reply, ToolCallSpec


async def test_reply_then_error_in_script_order() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("Hello, adventurers.", prompt_tokens=11, completion_tokens=4),
                    Error(400, code="bad", message="nope"))
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        first = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert first.choices[0].message.content == "Hello, adventurers."
        assert first.usage is not None and first.usage.prompt_tokens == 11
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert info.value.code == "bad"
        assert len(server.chat_requests) == 2
        await client.close()


async def test_streamed_tool_call_reassembles() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5"})]))
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        args = ""
        usage = None
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    assert tc.function is not None
                    args += tc.function.arguments or ""
        assert args == '{"expression": "1d20+5"}'
        assert usage is not None and usage.total_tokens > 0
        await client.close()
