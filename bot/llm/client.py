"""The model client: ``openai.AsyncOpenAI`` with ONE retry layer (tenacity), typed errors, usage and
cost, streaming (``bot.llm.stream``), concurrency and rate limits. No Discord imports.

Retries (and only these): 429 rate limits (never a 429 with code ``insufficient_quota``), 408, 409,
every 5xx, ``APITimeoutError``, ``APIConnectionError`` and a stream's error event, the last three in a
stream only before any text was handed on. The wait is at least what the server asks
(``retry-after-ms``, then ``Retry-After`` in seconds), otherwise exponential backoff with full jitter;
retrying stops after ``max_attempts`` or when the next wait would pass the call's deadline, and the
whole call is also bounded by ``asyncio.timeout(deadline)``. The SDK's own retries are off
(``max_retries=0``).

``moderate`` (the moderation API, ``POST /moderations``) goes through the same layer; an endpoint
without one (404/405/501, or a body that is not a moderation result) raises ``ModerationUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from bot.config import OPENAI_DEFAULT_BASE_URL, validate_http_url
from bot.errors import UserInputError
from bot.llm import errors as E
from bot.llm.failures import connection_detail, is_transient, retry_after_seconds, to_typed
from bot.llm.limiter import RateLimiter
from bot.llm.pricing import PriceTable
from bot.llm.stream import OnText, streamed_chat, usage_of
from bot.llm.tokens import count_message_tokens
from bot.llm.types import ChatResult, ModerationResult, TextModeration, ToolCall, Usage

log = logging.getLogger(__name__)

_REASONING = re.compile(r"^o\d")  # o1, o1-mini, o3, o3-mini, o4-mini and their snapshots
_NO_SYSTEM = ("o1-mini", "o1-preview")
MAX_BACKOFF_SECONDS = 20.0
MODERATION_MODEL = "omni-moderation-latest"
T = TypeVar("T")


def _bare(model: str) -> str:
    return model.strip().lower().rsplit("/", 1)[-1]


def is_reasoning_model(model: str) -> bool:
    """True for OpenAI's o-series reasoning models (they take ``max_completion_tokens``, no
    ``temperature``)."""
    return bool(_REASONING.match(_bare(model)))


def validate_base_url(url: str) -> str:
    """Return a cleaned endpoint URL. Raises ``UserInputError`` unless it is an absolute http(s) URL."""
    try:
        return validate_http_url(url.strip(), "OPENAI_BASE_URL")
    except ValueError as exc:
        raise UserInputError(str(exc)) from None


def validate_api_key(key: str | None, base_url: str = OPENAI_DEFAULT_BASE_URL) -> str:
    """Return the key if usable: non-empty, no spaces; ``sk-`` shape only on OpenAI's own endpoint
    (Ollama and llama.cpp accept anything). Raises ``UserInputError`` saying what is wrong, never
    echoing the key."""
    key = (key or "").strip()
    if not key:
        raise UserInputError("OPENAI_API_KEY is empty: set it (any text works for Ollama or llama.cpp).")
    if re.search(r"\s", key):
        raise UserInputError("OPENAI_API_KEY contains spaces; copy it again without them.")
    host = re.sub(r"^\w+://", "", base_url).split("/")[0].split(":")[0].lower()
    if (host == "api.openai.com" or host.endswith(".openai.com")) and not key.startswith("sk-"):
        raise UserInputError("OPENAI_API_KEY does not look like an OpenAI key (they start with 'sk-').")
    return key


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """Result of ``LLMClient.check()``: whether the endpoint answered and accepted the key."""

    ok: bool
    detail: str
    models: list[str]


@dataclass(slots=True)
class ModelTotals:
    """Running totals for one model: requests, tokens, US dollars (None once any call was unpriced)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cost_usd: float | None = 0.0


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _moderation_typed(exc: BaseException, attempts: int) -> E.LLMError:
    """``to_typed``, except that "no such API" answers become ``ModerationUnavailable``: 404 / 405 /
    501 (what Ollama, llama.cpp and OpenAI itself answer for an unknown URL or method) and a body
    the SDK cannot read as a moderation result."""
    status = _status(exc)
    unreadable = isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError, KeyError,
                                  AttributeError))
    if status in (404, 405, 501) or unreadable:
        detail = f"HTTP {status}" if status is not None and not unreadable else "an unreadable body"
        return E.ModerationUnavailable(f"no moderation API at this endpoint ({detail})", status=status,
                                       request_id=getattr(exc, "request_id", None), attempts=attempts)
    return to_typed(exc, attempts)


def _plain(value: Any) -> dict[str, Any] | None:
    """A pydantic model (``by_alias``: OpenAI's slash names) or a dict as a dict; None otherwise."""
    if hasattr(value, "model_dump"):
        dumped = value.model_dump(by_alias=True, exclude_none=True)
        return dumped if isinstance(dumped, dict) else None
    return value if isinstance(value, dict) else None


def _moderation_results(response: Any, expected: int) -> tuple[TextModeration, ...] | None:
    """The per-text results of a moderation answer, or None when it is not one (wrong count, no
    scores, a score that is not a number)."""
    results = getattr(response, "results", None)
    if not isinstance(results, list) or len(results) != expected:
        return None
    out: list[TextModeration] = []
    for item in results:
        flagged = getattr(item, "flagged", None) if not isinstance(item, dict) else item.get("flagged")
        raw_scores = _plain(getattr(item, "category_scores", None) if not isinstance(item, dict)
                            else item.get("category_scores"))
        raw_flags = _plain(getattr(item, "categories", None) if not isinstance(item, dict)
                           else item.get("categories")) or {}
        if not isinstance(flagged, bool) or not raw_scores:
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw_scores.values()):
            return None
        out.append(TextModeration(flagged, {str(k): bool(v) for k, v in raw_flags.items() if isinstance(v, bool)},
                                  {str(k): float(v) for k, v in raw_scores.items()}))
    return tuple(out)


def _break_cycle(retrying: AsyncRetrying) -> None:
    """Free one call's tenacity objects by reference counting instead of a full garbage collection.

    tenacity 9 keeps a reference cycle per ``async for`` loop: the ``RetryCallState`` points at its
    ``AsyncRetrying`` (``retry_object``), which keeps it as ``_retry_state``, and its per-thread
    ``iter_state`` holds bound methods of it. A model call lasts long enough for those ~50 objects
    to reach the oldest generation, so every turn left cyclic garbage that only a full collection
    frees, and full collections paused turns for 30-60 ms (bench/journal_bench.py, README "What
    bounds the misses"). Emptying the iteration state and dropping the stored retry state after the
    loop breaks both links; tenacity reads neither once the loop is over.
    """
    retrying.iter_state.reset()
    vars(retrying).pop("_retry_state", None)


class LLMClient:
    """An OpenAI-compatible chat client for the DM.

    Args:
        api_key: endpoint key (validated: non-empty; ``sk-`` shape only for OpenAI's endpoint).
        base_url: endpoint URL (OpenAI, OpenRouter, Ollama ``/v1``, llama.cpp ``/v1``).
        default_model: model used when a call names none.
        timeout_s: one HTTP attempt's time limit, seconds.
        deadline_s: one call's total time limit including retries and waits, seconds.
        max_attempts: HTTP attempts per call, first included.
        max_concurrency / requests_per_minute / tokens_per_minute: client-side limits (0 = none).
        prices: price table for cost in US dollars (default: the shipped table).
    Raises:
        UserInputError: bad key or URL.
    """

    def __init__(self, *, api_key: str, base_url: str = OPENAI_DEFAULT_BASE_URL, default_model: str = "gpt-4o-mini",
                 timeout_s: float = 60.0, deadline_s: float = 180.0, max_attempts: int = 5,
                 max_concurrency: int = 8, requests_per_minute: int = 0, tokens_per_minute: int = 0,
                 prices: PriceTable | None = None) -> None:
        self.base_url = validate_base_url(base_url)
        key = validate_api_key(api_key, self.base_url)
        self.default_model = default_model
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_attempts = max(1, max_attempts)
        self.prices = prices or PriceTable.default()
        self.limiter = RateLimiter(max_concurrency, requests_per_minute, tokens_per_minute)
        self._openai = AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout_s)
        self._totals: dict[str, ModelTotals] = {}
        self.stream_usage = True  # ask streams for their usage (False once the endpoint refused it)

    @classmethod
    def from_settings(cls, settings: Any) -> LLMClient:
        """Build from ``bot.config.Settings``. Raises ``UserInputError`` for a missing or bad key."""
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        return cls(api_key=key, base_url=settings.openai_base_url, default_model=settings.dm_model,
                   timeout_s=settings.llm_timeout_seconds, deadline_s=settings.llm_deadline_seconds,
                   max_attempts=settings.llm_max_attempts, max_concurrency=settings.llm_max_concurrency,
                   requests_per_minute=settings.llm_requests_per_minute,
                   tokens_per_minute=settings.llm_tokens_per_minute,
                   prices=PriceTable.default().with_overrides(settings.llm_prices_json))

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._openai.close()

    def totals(self) -> dict[str, ModelTotals]:
        """Running totals per model since this client was created (a copy)."""
        return {k: ModelTotals(v.requests, v.prompt_tokens, v.completion_tokens, v.cached_prompt_tokens,
                               v.cost_usd) for k, v in self._totals.items()}

    # --- request shaping -------------------------------------------------------------------------
    def _kwargs(self, messages: list[dict[str, Any]], model: str | None, temperature: float | None,
                max_tokens: int | None, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
        model = model or self.default_model
        kwargs: dict[str, Any] = {"model": model}
        if is_reasoning_model(model):
            if _bare(model).startswith(_NO_SYSTEM):
                messages = [{**m, "role": "user"} if m.get("role") in ("system", "developer") else m
                            for m in messages]
            if max_tokens is not None:
                kwargs["max_completion_tokens"] = max_tokens
        else:
            if temperature is not None:
                kwargs["temperature"] = temperature
            if max_tokens is not None:
                kwargs["max_tokens"] = max_tokens
        kwargs["messages"] = messages
        if tools:
            kwargs["tools"] = tools
        return kwargs

    async def post_completion(self, body: dict[str, Any], *, stream: bool = False) -> Any:
        """POST ``/chat/completions`` through the SDK's public low-level ``post`` (auth, base URL,
        timeout, typed ``openai`` errors for HTTP statuses all stay the SDK's).

        It skips the SDK's per-field TypedDict transform of the request: for plain JSON messages like
        ours it changes nothing, but it costs about 50 ms of CPU for a 100-message prompt (profiled
        with ``python -m bench --only overhead``), which at 200 busy channels starved the event loop.

        Returns a ``ChatCompletion`` (its ``_request_id`` is the endpoint's ``x-request-id``), or an
        ``AsyncStream`` of chunks when ``stream``. Raises ``openai.APIError`` subclasses.
        """
        if stream:
            return await self._openai.post("/chat/completions", body=body, cast_to=ChatCompletion, stream=True,
                                           stream_cls=AsyncStream[ChatCompletionChunk])
        return await self._openai.post("/chat/completions", body=body, cast_to=ChatCompletion)

    def estimate_tokens(self, kwargs: dict[str, Any]) -> int:
        """Tokens a request will spend against the tokens-per-minute limit, estimated before it is
        sent (prompt by tiktoken plus the ``max_tokens`` asked for); 0 when no limit is set."""
        if not self.limiter.tpm:
            return 0
        return count_message_tokens(kwargs["messages"], kwargs["model"]) + int(
            kwargs.get("max_tokens") or kwargs.get("max_completion_tokens") or 0)

    def finish(self, text: str, tool_calls: tuple[ToolCall, ...], finish: str | None, usage: Usage, model: str,
                started: float, request_id: str | None, attempts: int) -> ChatResult:
        """The ``ChatResult`` of a finished call (plain or streamed): its US-dollar cost from the
        price table, added to the per-model totals. ``started`` is ``time.perf_counter`` seconds."""
        cost = self.prices.cost(model, usage)
        totals = self._totals.setdefault(model, ModelTotals())
        totals.requests += 1
        totals.prompt_tokens += usage.prompt_tokens
        totals.completion_tokens += usage.completion_tokens
        totals.cached_prompt_tokens += usage.cached_prompt_tokens
        totals.cost_usd = None if cost is None or totals.cost_usd is None else totals.cost_usd + cost
        return ChatResult(text=text, tool_calls=tool_calls, finish_reason=finish, usage=usage, cost_usd=cost,
                          model=model, latency_s=time.perf_counter() - started, request_id=request_id,
                          attempts=attempts)

    # --- the one retry layer --------------------------------------------------------------------
    async def retrying(self, send: Callable[[], Awaitable[T]], *, deadline_s: float, estimate: int,
                        retryable: Callable[[BaseException], bool] = is_transient,
                        typed: Callable[[BaseException, int], E.LLMError] = to_typed) -> tuple[T, int, float]:
        """Run ``send`` (one HTTP attempt) under THE retry layer (see the module docstring): tenacity
        retries what ``retryable`` accepts, waiting at least what the server asks, each attempt holds
        a limiter slot for ``estimate`` tokens, and the whole call is bounded by ``deadline_s``
        seconds. Returns ``(value, attempts, started)`` (``started``: ``time.perf_counter`` seconds
        at the successful attempt).

        Raises:
            RequestTimedOut when the deadline passes; otherwise ``typed(exc, attempts)`` of the last
            failure (``to_typed``: the ``LLMError`` subclasses ``chat`` documents).
        """
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + deadline_s
        backoff = wait_random_exponential(multiplier=0.5, max=MAX_BACKOFF_SECONDS)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after_seconds(exc) if exc is not None else None
            return max(asked or 0.0, backoff(state))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return loop.time() + state.upcoming_sleep >= ends_at

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("model call failed: status=%s request_id=%s attempt=%d/%d; retrying in %.2f s",
                        getattr(exc, "status_code", type(exc).__name__), getattr(exc, "request_id", None),
                        state.attempt_number, self.max_attempts, state.upcoming_sleep)

        attempts = 0
        try:
            async with asyncio.timeout(deadline_s):
                retrying = AsyncRetrying(retry=retry_if_exception(retryable), wait=wait, stop=stop,
                                         before_sleep=before_sleep, reraise=True)
                try:
                    async for attempt in retrying:
                        with attempt:
                            attempts = attempt.retry_state.attempt_number
                            started = time.perf_counter()
                            async with self.limiter.slot(estimate):
                                value = await send()
                finally:
                    _break_cycle(retrying)
        except TimeoutError:
            timed_out = E.RequestTimedOut(f"call passed its {deadline_s:.0f} s deadline", attempts=max(1, attempts))
            log.warning("model call gave up: deadline %.1f s passed after %d attempt(s)", deadline_s, attempts)
            raise timed_out from None
        except openai.OpenAIError as exc:
            err = typed(exc, max(1, attempts))
            log.warning("model call failed for good: %s status=%s request_id=%s attempts=%d",
                        type(err).__name__, err.status, err.request_id, err.attempts)
            raise err from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise typed(exc, max(1, attempts)) from None
        return value, attempts, started

    # --- calls -----------------------------------------------------------------------------------
    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   tools: list[dict[str, Any]] | None = None, deadline_s: float | None = None,
                   on_text: OnText | None = None) -> ChatResult:
        """One chat completion with retries. ``messages`` are OpenAI chat messages; ``tools`` OpenAI
        function-tool schemas. Returns a ``ChatResult`` (cost in US dollars, latency in seconds).

        With ``on_text``, the reply is streamed: each piece of text is awaited through
        ``on_text(delta)`` as it arrives (False stops the stream), and nothing is retried once text
        was handed on; endpoints that do not stream or report no usage fall back
        (``bot.llm.stream``; usage then ``estimated``).

        Raises:
            AuthenticationFailed, QuotaExhausted, RateLimited, ServiceUnavailable, RequestTimedOut,
            BadRequest, ContextTooLong, ContentRefused, MalformedResponse (all ``LLMError``).
        """
        kwargs = self._kwargs(messages, model, temperature, max_tokens, tools)
        if on_text is not None:
            return await streamed_chat(self, kwargs, on_text, deadline_s=deadline_s or self.deadline_s)
        completion, attempts, started = await self.retrying(
            lambda: self.post_completion(kwargs), deadline_s=deadline_s or self.deadline_s,
            estimate=self.estimate_tokens(kwargs))
        request_id = getattr(completion, "_request_id", None)
        try:
            choice = completion.choices[0]
            message = choice.message
            text = message.content or ""
            calls = tuple(ToolCall(tc.id, tc.function.name, tc.function.arguments or "")
                          for tc in (message.tool_calls or []) if getattr(tc, "function", None) is not None)
            finish = choice.finish_reason
        except (AttributeError, IndexError, TypeError) as exc:
            raise E.MalformedResponse(f"completion without a message ({type(exc).__name__})",
                                      request_id=request_id, attempts=attempts) from None
        if finish == "content_filter":
            raise E.ContentRefused("reply stopped by the content filter", request_id=request_id, attempts=attempts)
        return self.finish(text, calls, finish, usage_of(completion.usage), completion.model or kwargs["model"],
                            started, request_id, attempts)

    async def moderate(self, texts: list[str], *, model: str = MODERATION_MODEL,
                       deadline_s: float | None = None) -> ModerationResult:
        """Classify ``texts`` with the endpoint's moderation API (the SDK's ``moderations.create``,
        ``POST /moderations``), under the same retry layer, limiter and typed errors as ``chat``.

        Returns a ``ModerationResult``: per text, in order, the endpoint's ``flagged``, its per-category
        verdicts and scores (0..1, OpenAI's category names). Moderation reports no tokens: usage is
        zero and the cost 0.0 US dollars unless the price table prices ``model``. ``deadline_s``:
        total time limit, seconds (default: the client's).

        Raises:
            ModerationUnavailable: the endpoint has no moderation API (404, 405 or 501, or a 200 body
                that is not a moderation result); never retried.
            the ``LLMError`` subclasses of ``chat`` for everything else (401, 429, 5xx, timeouts, ...).
        """
        if not texts:
            return ModerationResult((), model=model)

        async def send() -> Any:
            return await self._openai.moderations.create(input=list(texts), model=model)

        def retryable(exc: BaseException) -> bool:
            return is_transient(exc) and _status(exc) != 501

        response, attempts, started = await self.retrying(
            send, deadline_s=deadline_s or self.deadline_s, estimate=0, retryable=retryable,
            typed=_moderation_typed)
        request_id = getattr(response, "_request_id", None)
        results = _moderation_results(response, len(texts))
        if results is None:
            raise E.ModerationUnavailable("moderation endpoint answered with a body that is not a moderation "
                                          "result", request_id=request_id, attempts=attempts)
        answered = str(getattr(response, "model", None) or model)
        usage = Usage()
        priced = self.prices.cost(answered, usage)
        totals = self._totals.setdefault(answered, ModelTotals())
        totals.requests += 1
        totals.cost_usd = None if totals.cost_usd is None else totals.cost_usd + (priced or 0.0)
        return ModerationResult(results, model=answered, usage=usage, cost_usd=priced or 0.0,
                                latency_s=time.perf_counter() - started, request_id=request_id,
                                attempts=attempts)

    async def chat_completion(self, model: str, system_message: str, user_message: str,
                              temperature: float = 0.7, max_tokens: int | None = None) -> str:
        """The simple form: one system and one user message in, the reply text out. Raises ``LLMError``."""
        result = await self.chat([{"role": "system", "content": system_message},
                                  {"role": "user", "content": user_message}],
                                 model=model, temperature=temperature, max_tokens=max_tokens)
        return result.text

    async def check(self, timeout_s: float = 10.0) -> EndpointCheck:
        """List the endpoint's models: does it answer, and does it accept the key? Never raises for
        endpoint trouble; ``detail`` says what happened."""
        try:
            async with asyncio.timeout(timeout_s):
                page = await self._openai.models.list()
                models = [m.id for m in page.data]
        except TimeoutError:
            return EndpointCheck(False, f"no answer within {timeout_s:.0f} s", [])
        except openai.AuthenticationError as exc:
            return EndpointCheck(False, f"key refused ({exc.status_code})", [])
        except openai.PermissionDeniedError as exc:
            return EndpointCheck(False, f"key refused ({exc.status_code})", [])
        except openai.APITimeoutError:
            return EndpointCheck(False, f"no answer within {timeout_s:.0f} s", [])
        except openai.APIConnectionError as exc:
            return EndpointCheck(False, connection_detail(exc), [])
        except openai.APIStatusError as exc:
            if exc.status_code == 404:  # some servers have no /models: it answered and took the key
                return EndpointCheck(True, "answers (no model list at /models)", [])
            return EndpointCheck(False, f"answered HTTP {exc.status_code}", [])
        except Exception as exc:  # an odd body from a non-OpenAI server
            return EndpointCheck(False, f"unreadable answer ({type(exc).__name__})", [])
        return EndpointCheck(True, f"answers and accepts the key ({len(models)} models)", models)
