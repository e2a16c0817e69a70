"""Checks of the test harness itself: the scripted server answers the real openai client as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from tests.support.fake_openai import (
    MODERATION_BASELINE,
    MODERATION_CATEGORIES,
    STREAM_ERROR_MESSAGE,
    Error,
    FakeOpenAI,
    Reply,
    ToolCallSpec,
    flag_words,
    split_tokens,
)

T = TypeVar("T")
HI: Any = [{"role": "user", "content": "hi"}]
TIMEOUT = 10.0  # seconds for any one wait below; generous, these never take more than a second


async def within(awaitable: Awaitable[T], what: str, timeout: float = TIMEOUT) -> T:
    """Await with a deadline, failing with a message that says what did not finish."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {timeout} s") from None


def client_for(server: FakeOpenAI) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0, timeout=TIMEOUT)


async def stream_chunks(client: AsyncOpenAI, **kwargs: Any) -> list[ChatCompletionChunk]:
    """Create a streamed completion and read it to the end (or to the exception it raises)."""
    async def read() -> list[ChatCompletionChunk]:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True, **kwargs)
        return [chunk async for chunk in stream]
    return await within(read(), "reading the streamed completion")


async def read_until_error(chunks: list[ChatCompletionChunk], stream: AsyncIterator[ChatCompletionChunk]) -> None:
    async for chunk in stream:
        chunks.append(chunk)


def content_of(chunks: list[ChatCompletionChunk]) -> list[str]:
    """The non-empty content deltas, in order."""
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


NARRATION = "The goblin raises its rusty blade, snarls, and lunges at Borin's unguarded flank!"


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


def test_split_tokens_gives_word_like_pieces_that_join_back() -> None:
    assert split_tokens("The door creaks open.") == ["The", " door", " creaks", " open", "."]
    assert split_tokens("Unbelievably,\n\n  ok ") == ["Unbeliev", "ably", ",", "\n\n  ok", " "]
    for text in (NARRATION, "", "  ", "a—b…c 12345678901 «x»\t\n"):
        assert "".join(split_tokens(text)) == text


async def test_unpaced_stream_keeps_12_character_chunks() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("The door creaks open."))
        client = client_for(server)
        chunks = await stream_chunks(client)
        await client.close()
    assert content_of(chunks) == ["The door cre", "aks open."]
    record = server.chat_requests[0]
    assert record.headers_at is not None and record.first_token_at is not None and record.last_token_at is not None
    assert record.received_at <= record.headers_at <= record.first_token_at <= record.last_token_at


async def test_paced_stream_waits_for_the_first_token_then_one_chunk_per_token_at_the_rate() -> None:
    first_token_s, rate = 0.2, 40.0
    tokens = split_tokens(NARRATION)
    async with FakeOpenAI() as server:
        server.push(Reply(NARRATION, first_token_s=first_token_s, tokens_per_s=rate, completion_tokens=len(tokens)))
        client = client_for(server)
        chunks = await stream_chunks(client, stream_options={"include_usage": True})
        await client.close()
    assert content_of(chunks) == tokens  # one chunk per token, nothing merged or lost
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(tokens)
    record = server.chat_requests[0]
    assert record.headers_at is not None and record.first_token_at is not None and record.last_token_at is not None
    assert record.first_token_at - record.received_at >= first_token_s
    assert record.first_token_at - record.headers_at >= first_token_s
    assert record.last_token_at - record.first_token_at >= (len(tokens) - 1) / rate


async def test_paced_tool_calls_reassemble_and_record_no_text_tokens() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5"})],
                          first_token_s=0.05, tokens_per_s=100))
        client = client_for(server)
        chunks = await stream_chunks(client)
        await client.close()
    args = "".join(tc.function.arguments or "" for c in chunks for ch in c.choices
                   for tc in ch.delta.tool_calls or [] if tc.function is not None)
    assert args == '{"expression": "1d20+5"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    record = server.chat_requests[0]
    assert record.first_token_at is None and record.last_token_at is None  # no text was streamed


async def test_paced_reply_not_streamed_arrives_after_the_whole_generation() -> None:
    reply = Reply("The door creaks open.", first_token_s=0.1, tokens_per_s=20)
    assert reply.generation_s() == pytest.approx(0.1 + 4 / 20)  # 5 tokens
    async with FakeOpenAI() as server:
        server.push(reply)
        client = client_for(server)
        completion = await within(client.chat.completions.create(model="gpt-4o-mini", messages=HI),
                                  "the non-streamed completion")
        await client.close()
    assert completion.choices[0].message.content == "The door creaks open."
    record = server.chat_requests[0]
    assert record.headers_at is not None and record.headers_at - record.received_at >= reply.generation_s()
    assert record.first_token_at is None and record.last_token_at is None


async def test_drop_mid_stream_raises_api_connection_error_after_the_first_characters() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(NARRATION, fail_after_chars=10, fail_mode="drop"), Reply("Next turn."))
        client = client_for(server)
        stream = await within(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True),
                              "opening the stream")
        chunks: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIConnectionError) as info:
            await within(read_until_error(chunks, stream), "reading the dropped stream")
        after = await stream_chunks(client)  # the client recovers on a new connection
        await client.close()
    assert type(info.value) is openai.APIConnectionError  # not APITimeoutError, not a raw httpx2 error
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)  # "incomplete chunked read"
    assert "".join(content_of(chunks)) == NARRATION[:10]
    assert all(c.choices and c.choices[0].finish_reason is None for c in chunks)  # no finish, no usage
    assert "".join(content_of(after)) == "Next turn."
    record = server.chat_requests[0]
    assert record.first_token_at is not None and record.last_token_at is not None


async def test_error_event_mid_stream_raises_api_error_with_openais_error_body() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(NARRATION, fail_after_chars=13, fail_mode="error_event", first_token_s=0.01,
                          tokens_per_s=200))
        client = client_for(server)
        stream = await within(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True),
                              "opening the stream")
        chunks: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIError) as info:
            await within(read_until_error(chunks, stream), "reading the failing stream")
        await client.close()
    assert type(info.value) is openai.APIError  # the base class itself: no status code, not APIStatusError
    assert info.value.message == STREAM_ERROR_MESSAGE
    assert info.value.body == {"message": STREAM_ERROR_MESSAGE, "type": "server_error", "param": None, "code": None}
    assert "".join(content_of(chunks)) == NARRATION[:13]  # "The goblin ra": the last token is cut


async def test_failure_before_any_text_sends_only_the_role_chunk() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(NARRATION, fail_after_chars=0, fail_mode="error_event"))
        client = client_for(server)
        stream = await within(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True),
                              "opening the stream")
        chunks: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIError):
            await within(read_until_error(chunks, stream), "reading the failing stream")
        await client.close()
    assert len(chunks) == 1 and chunks[0].choices[0].delta.role == "assistant" and content_of(chunks) == []
    assert server.chat_requests[0].first_token_at is None


def test_reply_rejects_an_unknown_fail_mode() -> None:
    with pytest.raises(ValueError, match="fail_mode"):
        Reply("x", fail_after_chars=1, fail_mode="explode")  # type: ignore[arg-type]


async def test_a_server_that_does_not_stream_answers_plain_json_and_the_sdk_yields_nothing() -> None:
    async with FakeOpenAI(streaming=False) as server:
        server.push(Reply("The door creaks open."), Reply("Plain answer."))
        client = client_for(server)
        stream = await within(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True),
                              "opening the stream")
        content_type = stream.response.headers["content-type"]
        chunks: list[ChatCompletionChunk] = []
        await within(read_until_error(chunks, stream), "reading the JSON 'stream'")
        raw = await within(client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HI, stream=True), "the raw streamed request")
        await within(raw.http_response.aread(), "reading the raw body")
        await client.close()
    assert content_type.startswith("application/json")
    assert chunks == []  # the SDK's SSE decoder finds no ``data:`` line: no chunk and no exception
    completion = raw.http_response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Plain answer."
    assert [r.body["stream"] for r in server.chat_requests if r.body] == [True, True]
    assert server.chat_requests[0].first_token_at is None


async def test_stream_usage_false_omits_the_usage_chunk_even_when_asked() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("The door creaks open.", stream_usage=False))
        client = client_for(server)
        chunks = await stream_chunks(client, stream_options={"include_usage": True})
        await client.close()
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(content_of(chunks)) == "The door creaks open."


async def test_a_server_rejecting_stream_options_answers_400_in_openais_shape() -> None:
    async with FakeOpenAI(reject_stream_options=True) as server:
        server.push(Reply("Without options."))
        client = client_for(server)
        with pytest.raises(openai.BadRequestError) as info:
            await stream_chunks(client, stream_options={"include_usage": True})
        chunks = await stream_chunks(client)  # the queued reply answers the request without stream_options
        await client.close()
    assert info.value.status_code == 400
    assert info.value.body == {"message": "Unrecognized request argument supplied: stream_options",
                               "type": "invalid_request_error", "param": None, "code": None}
    assert "".join(content_of(chunks)) == "Without options."
    assert len(server.chat_requests) == 2 and "stream_options" in (server.chat_requests[0].body or {})
