"""The model client against a real HTTP server on 127.0.0.1 (tests/support/fake_openai.py)."""

from __future__ import annotations

import pytest

from bot.errors import UserInputError
from bot.llm import LLMClient, validate_api_key
from bot.llm import errors as E
from bot.llm.stream import OnText
from bot.llm.types import Usage
from tests.support.fake_openai import Drop, Error, FakeOpenAI, Hang, Malformed, Reply, ToolCallSpec

MESSAGES = [{"role": "system", "content": "You are the DM."}, {"role": "user", "content": "I open the door."}]


def collect(into: list[str], stop_after: int | None = None) -> OnText:
    """An ``on_text`` that appends each delta to ``into`` and asks to stop once ``stop_after`` arrived."""
    async def on_text(delta: str) -> bool:
        into.append(delta)
        return stop_after is None or len(into) < stop_after
    return on_text


def client(url: str, **kw: object) -> LLMClient:
    options: dict = dict(api_key="sk-test-key-123456", base_url=url, default_model="gpt-4o-mini",
                         timeout_s=5.0, deadline_s=20.0, max_attempts=4)
    options.update(kw)
    return LLMClient(**options)


async def test_success_returns_text_usage_cost_and_latency() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("The door creaks open.", prompt_tokens=1000, completion_tokens=200, cached_tokens=400))
        async with client(server.url) as c:
            result = await c.chat(MESSAGES, temperature=0.5, max_tokens=300)
        assert result.text == "The door creaks open." and result.finish_reason == "stop"
        usage = result.usage
        assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens) == (1000, 200, 400)
        # gpt-4o-mini: 600 x 0.15 + 400 x 0.075 + 200 x 0.60 per million
        assert result.cost_usd == pytest.approx((600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1e6)
        assert result.latency_s > 0 and result.request_id and result.attempts == 1
        body = server.chat_requests[0].body or {}
        assert body["temperature"] == 0.5 and body["max_tokens"] == 300
        assert server.chat_requests[0].headers["authorization"] == "Bearer sk-test-key-123456"
        assert c.totals()["gpt-4o-mini"].requests == 1


async def test_429_waits_at_least_retry_after_ms() -> None:
    async with FakeOpenAI() as server:
        server.push(Error(429, code="rate_limit_exceeded", retry_after_ms=300), Reply("ok"))
        async with client(server.url) as c:
            result = await c.chat(MESSAGES)
        assert result.text == "ok" and result.attempts == 2
        first, second = server.chat_requests
        assert second.at - first.at >= 0.3


async def test_insufficient_quota_is_not_retried() -> None:
    async with FakeOpenAI() as server:
        server.push(Error(429, code="insufficient_quota", message="You exceeded your current quota",
                          request_id="req_quota"), Reply("never"))
        async with client(server.url) as c:
            with pytest.raises(E.QuotaExhausted) as info:
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 1
        assert info.value.request_id == "req_quota" and info.value.status == 429
        assert "sk-test-key" not in repr(info.value) + str(info.value) + info.value.player_message


async def test_500_500_then_success() -> None:
    async with FakeOpenAI() as server:
        server.push(Error(500), Error(503), Reply("third time lucky"))
        async with client(server.url) as c:
            result = await c.chat(MESSAGES)
        assert result.text == "third time lucky" and result.attempts == 3
        assert len(server.chat_requests) == 3


async def test_hang_past_timeout_is_a_timeout_error() -> None:
    async with FakeOpenAI() as server:
        server.push(Hang(30), Hang(30))
        async with client(server.url, timeout_s=0.3, max_attempts=2) as c:
            with pytest.raises(E.RequestTimedOut):
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 2  # a timeout is transient: retried once


async def test_connection_refused_is_unavailable(closed_port_url: str) -> None:
    async with client(closed_port_url, max_attempts=2, deadline_s=5) as c:
        with pytest.raises(E.ServiceUnavailable) as info:
            await c.chat(MESSAGES)
    assert info.value.attempts == 2


@pytest.mark.parametrize("status,code,error", [(400, None, E.BadRequest),
                                               (401, "invalid_api_key", E.AuthenticationFailed),
                                               (400, "context_length_exceeded", E.ContextTooLong),
                                               (404, "model_not_found", E.BadRequest), (422, None, E.BadRequest)])
async def test_client_errors_are_not_retried(status: int, code: str | None, error: type) -> None:
    async with FakeOpenAI() as server:
        server.push(Error(status, code=code), Reply("never"))
        async with client(server.url) as c:
            with pytest.raises(error):
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 1


async def test_malformed_body_and_dropped_connection() -> None:
    async with FakeOpenAI() as server:
        server.push(Malformed(b"{definitely not json"))
        async with client(server.url, max_attempts=1) as c:
            with pytest.raises(E.MalformedResponse):
                await c.chat(MESSAGES)
        server.push(Drop(), Reply("after the drop"))
        async with client(server.url) as c:
            assert (await c.chat(MESSAGES)).text == "after the drop"


async def test_streamed_reply_with_usage() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("Torchlight flickers across the wet stone walls.", prompt_tokens=50, completion_tokens=9))
        async with client(server.url) as c:
            deltas: list[str] = []
            result = await c.chat(MESSAGES, on_text=collect(deltas))
        # the fake server streams text in 12-character pieces: 47 characters -> 12 + 12 + 12 + 11
        assert deltas == ["Torchlight f", "lickers acro", "ss the wet s", "tone walls."]
        assert result.usage.completion_tokens == 9 and result.usage.estimated is False
        assert result.text == "".join(deltas) and result.request_id == "req_fake_1"
        assert (server.chat_requests[0].body or {})["stream_options"] == {"include_usage": True}


async def test_tool_call_reply() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+3", "reason": "Stealth"})]))
        async with client(server.url) as c:
            tool = {"type": "function", "function": {"name": "roll_dice", "parameters": {"type": "object"}}}
            result = await c.chat(MESSAGES, tools=[tool])
        assert result.finish_reason == "tool_calls" and result.text == ""
        assert result.tool_calls[0].name == "roll_dice"
        assert result.tool_calls[0].arguments == '{"expression": "1d20+3", "reason": "Stealth"}'
        assert result.assistant_message()["tool_calls"][0]["function"]["name"] == "roll_dice"


async def test_deadline_cuts_retries_short() -> None:
    async with FakeOpenAI() as server:
        server.push(Error(503, retry_after=5), Reply("too late"))
        async with client(server.url, deadline_s=1.0, max_attempts=5) as c:
            with pytest.raises(E.ServiceUnavailable):
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 1  # waiting 5 s would pass the 1 s deadline: give up now


async def test_reasoning_models_get_what_they_accept() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("a"), Reply("b"))
        async with client(server.url) as c:
            await c.chat(MESSAGES, model="o3-mini-2025-01-31", temperature=0.7, max_tokens=100)
            await c.chat(MESSAGES, model="o1-mini", temperature=0.7, max_tokens=100)
        o3, o1mini = (r.body or {} for r in server.chat_requests)
        assert o3["max_completion_tokens"] == 100 and "max_tokens" not in o3 and "temperature" not in o3
        assert o3["messages"][0]["role"] == "system"
        assert [m["role"] for m in o1mini["messages"]] == ["user", "user"]


async def test_chat_completion_simple_form_and_check() -> None:
    async with FakeOpenAI(require_key="sk-test-key-123456") as server:
        server.push(Reply("Roll for initiative!"))
        async with client(server.url) as c:
            text = await c.chat_completion("gpt-4o-mini", "You are the DM.", "Start", temperature=0.2)
            assert text == "Roll for initiative!"
            body = server.chat_requests[0].body or {}
            assert body["messages"][0] == {"role": "system", "content": "You are the DM."}
            check = await c.check()
            assert check.ok and "gpt-4o-mini" in check.models
        async with client(server.url, api_key="sk-wrong-key-0000") as bad:
            check = await bad.check()
            assert not check.ok and "401" in check.detail


def test_key_and_url_validation() -> None:
    with pytest.raises(UserInputError):
        validate_api_key("", "https://api.openai.com/v1")
    with pytest.raises(UserInputError, match="sk-"):
        validate_api_key("abc123", "https://api.openai.com/v1")
    assert validate_api_key("ollama", "http://localhost:11434/v1") == "ollama"
    with pytest.raises(UserInputError):
        LLMClient(api_key="x", base_url="ftp://nope")


async def test_single_attempt_hang_is_request_timed_out() -> None:
    async with FakeOpenAI() as server:
        server.push(Hang(30))
        async with client(server.url, timeout_s=0.3, max_attempts=1) as c:
            with pytest.raises(E.RequestTimedOut) as info:
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 1 and info.value.attempts == 1


async def test_retry_after_seconds_header_and_exhausted_429() -> None:
    async with FakeOpenAI() as server:
        server.push(Error(429, code="rate_limit_exceeded", retry_after=0.4),
                    Error(429, code="rate_limit_exceeded", retry_after_ms=50, request_id="req_last"))
        async with client(server.url, max_attempts=2) as c:
            with pytest.raises(E.RateLimited) as info:
                await c.chat(MESSAGES)
        first, second = server.chat_requests
        assert second.at - first.at >= 0.4
        assert (info.value.status, info.value.request_id, info.value.attempts) == (429, "req_last", 2)


@pytest.mark.parametrize("status", [408, 409, 502])
async def test_transient_statuses_exhausted_are_unavailable(status: int) -> None:
    async with FakeOpenAI() as server:
        server.push(Error(status), Error(status))
        async with client(server.url, max_attempts=2) as c:
            with pytest.raises(E.ServiceUnavailable) as info:
                await c.chat(MESSAGES)
        assert len(server.chat_requests) == 2 and info.value.status == status


async def test_content_filter_is_refused() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("", finish_reason="content_filter"), Reply("cut", finish_reason="content_filter"))
        async with client(server.url) as c:
            with pytest.raises(E.ContentRefused):
                await c.chat(MESSAGES)
            with pytest.raises(E.ContentRefused):
                await c.chat(MESSAGES, on_text=collect([]))
        assert len(server.chat_requests) == 2


async def test_streamed_tool_calls_are_assembled_by_index() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("Let me roll.", tool_calls=[
            ToolCallSpec("roll_dice", {"expression": "1d20+3", "reason": "Stealth check for the rogue"}),
            ToolCallSpec("update_hp", {"character": "Bram", "delta": -7})], prompt_tokens=80, completion_tokens=30))
        async with client(server.url) as c:
            deltas: list[str] = []
            result = await c.chat(MESSAGES, tools=[{"type": "function", "function": {"name": "roll_dice"}}],
                                  on_text=collect(deltas))
        assert "".join(deltas) == "Let me roll." and result.finish_reason == "tool_calls"
        assert [tc.name for tc in result.tool_calls] == ["roll_dice", "update_hp"]
        assert result.tool_calls[0].arguments == '{"expression": "1d20+3", "reason": "Stealth check for the rogue"}'
        assert result.tool_calls[1].arguments == '{"character": "Bram", "delta": -7}'
        assert result.usage.prompt_tokens == 80 and c.totals()["gpt-4o-mini"].requests == 1


async def test_totals_accumulate_and_unknown_model_cost_is_none() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply("a", prompt_tokens=1000, completion_tokens=100, cached_tokens=200),
                    Reply("b", prompt_tokens=500, completion_tokens=50),
                    Reply("c", prompt_tokens=10, completion_tokens=5, model="llama3.1:8b"))
        async with client(server.url) as c:
            await c.chat(MESSAGES)
            await c.chat(MESSAGES)
            local = await c.chat(MESSAGES, model="llama3.1:8b")
        assert local.cost_usd is None
        totals = c.totals()
        mini = totals["gpt-4o-mini"]
        assert (mini.requests, mini.prompt_tokens, mini.completion_tokens,
                mini.cached_prompt_tokens) == (2, 1500, 150, 200)
        assert mini.cost_usd == pytest.approx((1300 * 0.15 + 200 * 0.075 + 150 * 0.60) / 1e6)
        assert totals["llama3.1:8b"].cost_usd is None


async def test_check_connection_refused_never_raises(closed_port_url: str) -> None:
    async with client(closed_port_url) as c:
        check = await c.check()
    assert not check.ok and check.detail == "connection refused" and check.models == []


def test_from_settings() -> None:
    from bot.config import load_settings

    settings = load_settings(env_file=None, openai_api_key="sk-from-settings", openai_base_url="http://127.0.0.1:9/v1",
                             dm_model="gpt-4.1-mini", llm_max_attempts=3,
                             llm_prices_json='{"gpt-4.1-mini": {"input": 1, "output": 2}}')
    c = LLMClient.from_settings(settings)
    assert (c.default_model, c.max_attempts, c.base_url) == ("gpt-4.1-mini", 3, "http://127.0.0.1:9/v1")
    price = c.prices.price_for("gpt-4.1-mini")
    assert price is not None and price.output == 2
    with pytest.raises(UserInputError):
        LLMClient.from_settings(load_settings(env_file=None, openai_api_key=None))


# --- moderation ---------------------------------------------------------------------------------

async def test_moderate_returns_per_text_flags_and_scores_at_no_cost() -> None:
    from tests.support.fake_openai import MODERATION_BASELINE, flag_words

    scorer = flag_words({"disembowel": {"violence": 0.93, "violence/graphic": 0.71}})
    async with FakeOpenAI(moderation=scorer) as server, client(server.url) as c:
        result = await c.moderate(["I open the door.", "I disembowel the guard."])
        totals = c.totals()
    assert result.model == "omni-moderation-latest" and result.attempts == 1 and result.request_id
    assert result.flagged is True
    clean, bad = result.results
    assert (clean.flagged, bad.flagged) == (False, True)
    assert clean.scores["violence"] == MODERATION_BASELINE and len(clean.scores) == 13
    assert (bad.scores["violence"], bad.scores["violence/graphic"]) == (0.93, 0.71)
    assert {c for c, f in bad.categories.items() if f} == {"violence", "violence/graphic"}
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.cost_usd) == (0, 0, 0.0)
    assert result.latency_s > 0
    assert totals["omni-moderation-latest"].requests == 1 and totals["omni-moderation-latest"].cost_usd == 0.0
    assert [r.body for r in server.moderation_requests] == [
        {"input": ["I open the door.", "I disembowel the guard."], "model": "omni-moderation-latest"}]
    assert server.chat_requests == []


async def test_moderate_retries_like_chat_then_maps_errors() -> None:
    async with FakeOpenAI() as server:
        server.push_moderation(Error(503), Error(429, code="rate_limit_exceeded", retry_after_ms=200))
        async with client(server.url) as c:
            result = await c.moderate(["hello"])
        assert result.attempts == 3 and result.flagged is False
        first, second, third = server.moderation_requests
        assert third.at - second.at >= 0.2
        server.push_moderation(Error(401, code="invalid_api_key"), Error(429, code="insufficient_quota"))
        async with client(server.url) as c:
            with pytest.raises(E.AuthenticationFailed):
                await c.moderate(["hello"])
            with pytest.raises(E.QuotaExhausted):
                await c.moderate(["hello"])
        assert len(server.moderation_requests) == 5  # neither was retried


@pytest.mark.parametrize("step", [Error(404, message="Invalid URL (POST /v1/moderations)"),
                                  Error(405, message="Method Not Allowed"), Error(501, message="Not Implemented"),
                                  Malformed(b'{"object": "list", "data": []}'), Malformed(b"<html>nope</html>")])
async def test_an_endpoint_without_moderation_raises_moderation_unavailable_once(step: object) -> None:
    async with FakeOpenAI() as server:
        server.push_moderation(step)  # type: ignore[arg-type]
        async with client(server.url) as c:
            with pytest.raises(E.ModerationUnavailable) as info:
                await c.moderate(["hello"])
    assert len(server.moderation_requests) == 1  # never retried
    assert "no moderation API" in info.value.player_message
    assert info.value.admin_hint and "moderation" in info.value.admin_hint


async def test_moderate_against_a_server_without_the_route_and_through_the_limiter() -> None:
    from bot.llm.limiter import RateLimiter

    async with FakeOpenAI(moderation=None) as server, client(server.url) as c:
        with pytest.raises(E.ModerationUnavailable) as info:
            await c.moderate(["hello"])
        assert info.value.status == 404
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    async with FakeOpenAI() as server, client(server.url) as c:
        c.limiter = RateLimiter(1, requests_per_minute=1, clock=lambda: now[0], sleep=fake_sleep)
        await c.chat(MESSAGES)
        await c.moderate(["hello"])  # the same limiter: waits out the minute the chat call used
        assert c.limiter.waited_seconds == 60.0
        assert (await c.moderate([])).results == ()
    assert len(server.moderation_requests) == 1  # no texts: no call


# --- streaming: failures, fallbacks, usage ----------------------------------------------------------
STORY = "The rope bridge sways over the chasm while the wind screams through the gorge."


def cookbook_tokens(messages: list[dict[str, str]], text: str) -> tuple[int, int]:
    """(prompt, completion) tokens by the OpenAI cookbook's rule (3 per message, its role and content,
    3 to prime the reply), summed here over gpt-4o-mini's tiktoken encoding (o200k_base, shipped)."""
    from bot.llm.tokens import encoding_for_model

    enc = encoding_for_model("gpt-4o-mini")
    prompt = 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages)
    return prompt, len(enc.encode(text))


async def test_a_stream_that_breaks_before_any_text_is_retried() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(STORY, fail_after_chars=0, fail_mode="drop"), Reply("The door opens."))
        async with client(server.url) as c:
            deltas: list[str] = []
            result = await c.chat(MESSAGES, on_text=collect(deltas))
        assert "".join(deltas) == "The door opens." and result.attempts == 2
        assert len(server.chat_requests) == 2


@pytest.mark.parametrize("mode", ["drop", "error_event"])
async def test_a_stream_that_breaks_after_text_is_not_retried(mode: str) -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(STORY, fail_after_chars=30, fail_mode=mode), Reply("never asked for"))
        async with client(server.url) as c:
            deltas: list[str] = []
            with pytest.raises(E.ServiceUnavailable) as failed:
                await c.chat(MESSAGES, on_text=collect(deltas))
        assert "".join(deltas) == STORY[:30]
        assert len(server.chat_requests) == 1
        partial = failed.value.partial  # what arrived is billed: kept for the usage ledger
        assert partial is not None and partial.text == STORY[:30]
        assert partial.usage == Usage(*cookbook_tokens(MESSAGES, STORY[:30]), 0, estimated=True)


async def test_a_server_that_does_not_stream_answers_whole() -> None:
    async with FakeOpenAI(streaming=False) as server:
        server.push(Reply(STORY, prompt_tokens=40, completion_tokens=17))
        async with client(server.url) as c:
            deltas: list[str] = []
            result = await c.chat(MESSAGES, on_text=collect(deltas))
        assert deltas == [STORY] and result.text == STORY
        assert result.usage == Usage(40, 17, 0, estimated=False)


async def test_a_stream_without_usage_is_counted_locally_and_marked_estimated() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(STORY, stream_usage=False))
        async with client(server.url) as c:
            result = await c.chat(MESSAGES, on_text=collect([]))
        prompt, completion = cookbook_tokens(MESSAGES, STORY)
        assert result.usage == Usage(prompt, completion, 0, estimated=True)
        assert c.totals()["gpt-4o-mini"].prompt_tokens == prompt


async def test_an_endpoint_that_refuses_stream_options_is_asked_without_them() -> None:
    async with FakeOpenAI(reject_stream_options=True) as server:
        server.push(Reply(STORY), Reply("The far side is close."))
        async with client(server.url) as c:
            first = await c.chat(MESSAGES, on_text=collect([]))
            second = await c.chat(MESSAGES, on_text=collect([]))
        assert (first.text, second.text) == (STORY, "The far side is close.")
        assert first.usage.estimated and second.usage.estimated
        bodies = [r.body or {} for r in server.chat_requests]
        assert ["stream_options" in b for b in bodies] == [True, False, False]  # asked once, then never


async def test_a_stream_stopped_by_the_caller_ends_with_what_arrived() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(STORY, completion_tokens=99))
        async with client(server.url) as c:
            deltas: list[str] = []
            result = await c.chat(MESSAGES, on_text=collect(deltas, stop_after=2))
        # the fake streams 12-character pieces: the caller stopped after two
        assert deltas == [STORY[:12], STORY[12:24]] and result.text == STORY[:24]
        assert result.finish_reason is None
        assert result.usage == Usage(*cookbook_tokens(MESSAGES, STORY[:24]), 0, estimated=True)


async def test_parallel_tool_calls_streamed_with_one_index_stay_apart() -> None:
    async with FakeOpenAI() as server:  # Ollama streams every parallel call with index 0
        server.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5"}, id="call_a"),
                                            ToolCallSpec("roll_dice", {"expression": "1d20+2"}, id="call_b")],
                          tool_index_zero=True))
        async with client(server.url) as c:
            result = await c.chat(MESSAGES, tools=[{"type": "function", "function": {"name": "roll_dice"}}],
                                  on_text=collect([]))
    assert [(t.id, t.name, t.arguments) for t in result.tool_calls] == [
        ("call_a", "roll_dice", '{"expression": "1d20+5"}'), ("call_b", "roll_dice", '{"expression": "1d20+2"}')]


async def test_an_error_in_the_callers_on_text_is_the_callers_not_the_endpoints() -> None:
    async with FakeOpenAI() as server:
        server.push(Reply(STORY))

        async def broken(delta: str) -> bool:
            raise KeyError("a bug in the caller")

        async with client(server.url) as c:
            with pytest.raises(KeyError, match="a bug in the caller"):
                await c.chat(MESSAGES, on_text=broken)
        assert len(server.chat_requests) == 1  # not retried, not turned into MalformedResponse


async def test_calls_leave_no_cyclic_garbage_of_the_retry_layer() -> None:
    """A model call's tenacity objects are freed by reference counting: none is left for the cycle
    collector (each such leftover reached the oldest generation and cost full-collection pauses)."""
    import gc

    async with FakeOpenAI() as server:
        server.push(Reply("warm"), Reply("one"), Error(500), Reply("two, after a retry"), Reply("three"))
        async with client(server.url) as c:
            await c.chat(MESSAGES)
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                results = [await c.chat(MESSAGES) for _ in range(2)]
                results.append(await c.chat(MESSAGES, on_text=collect([])))
                gc.collect()
                leftovers = sorted({type(o).__qualname__ for o in gc.garbage
                                    if type(o).__module__.startswith("tenacity")})
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
    assert [r.text for r in results] == ["one", "two, after a retry", "three"]
    assert leftovers == []
