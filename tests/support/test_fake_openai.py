"""Checks of the test harness itself: the scripted server answers the real openai client as scripted."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.fake_openai import (
    MODERATION_BASELINE,
    MODERATION_CATEGORIES,
    Error,
    FakeOpenAI,
    Reply,
    ToolCallSpec,
    flag_words,
)


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


async def test_moderations_answer_in_openais_shape_one_result_per_text() -> None:
    scorer = flag_words({"behead": {"violence": 0.91, "violence/graphic": 0.62}, "slur": {"hate": 0.3}})
    async with FakeOpenAI(moderation=scorer) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        response = await client.moderations.create(
            model="omni-moderation-latest", input=["I open the door.", "I BEHEAD the slur-spewing troll."])
        raw = await client.moderations.with_raw_response.create(model="text-moderation-latest", input="hello")
        await client.close()
    assert response.model == "omni-moderation-latest" and response.id.startswith("modr-")
    clean, bad = response.results
    assert clean.flagged is False and bad.flagged is True
    assert clean.category_scores.violence == MODERATION_BASELINE
    flags = bad.categories.model_dump(by_alias=True)
    scores = bad.category_scores.model_dump(by_alias=True)
    assert set(flags) == set(scores) == set(MODERATION_CATEGORIES)
    assert {c for c, f in flags.items() if f} == {"violence", "violence/graphic"}  # hate 0.3 < 0.5
    assert (scores["violence"], scores["violence/graphic"], scores["hate"]) == (0.91, 0.62, 0.3)
    assert bad.category_applied_input_types.model_dump(by_alias=True)["sexual"] == ["text"]
    body = raw.http_response.json()
    assert raw.headers["x-request-id"].startswith("req_fake_")
    assert set(body) == {"id", "model", "results"} and len(body["results"]) == 1
    assert "category_applied_input_types" not in body["results"][0]  # only omni models report it
    assert [r.body for r in server.moderation_requests] == [
        {"model": "omni-moderation-latest", "input": ["I open the door.", "I BEHEAD the slur-spewing troll."]},
        {"model": "text-moderation-latest", "input": "hello"}]
    assert server.chat_requests == []


async def test_a_server_without_moderation_answers_404_with_openais_error_json() -> None:
    async with FakeOpenAI(moderation=None) as server:
        server.push_moderation(Error(503, message="overloaded"))
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.InternalServerError):  # the queued step answers first
            await client.moderations.create(input="hi")
        with pytest.raises(openai.NotFoundError) as info:
            await client.moderations.create(input="hi")
        await client.close()
        await server.wait_for_moderation_requests(2, timeout=5)
    assert info.value.status_code == 404
    assert info.value.body == {"message": "Invalid URL (POST /v1/moderations)", "type": "invalid_request_error",
                               "param": None, "code": None}
    assert info.value.response.headers["x-request-id"].startswith("req_fake_")
