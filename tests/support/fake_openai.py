"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks the parts of the OpenAI API the bot uses (``POST /v1/chat/completions``, streamed or not,
``POST /v1/moderations`` and ``GET /v1/models``) over a real socket, so the real ``openai.AsyncOpenAI`` client talks to
it exactly as it would to OpenAI, OpenRouter, Ollama or llama.cpp's server.

Script it with steps, consumed one per request in order; when the queue is empty the ``default``
callable (request JSON -> step) answers, and if there is none a plain ``Reply`` does:

    async with FakeOpenAI() as server:
        server.push(Error(429, retry_after_ms=300), Reply("The door creaks open."))
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        ...
        assert len(server.requests) == 2

Steps: ``Reply`` (text and/or tool calls, usage, optional delay), ``Error`` (status, OpenAI-style error
body, headers), ``Hang`` (never answers until the client gives up), ``Malformed`` (200 with a body that
is not a completion), ``Drop`` (close the connection without an answer).

Moderation (``POST /v1/moderations``) answers in OpenAI's shape (``id``, ``model``, ``results`` with
``flagged``, ``categories``, ``category_scores`` and, for omni models, ``category_applied_input_types``),
one result per input string. What it scores is scripted by ``moderation``: a ``Scorer`` (text ->
category scores, e.g. ``flag_words("kill", category="violence")``; the default scores everything
clean), or None for a server WITHOUT a moderation API, which answers 404 with OpenAI's unknown-URL
error JSON (as OpenAI-compatible local servers such as llama.cpp and Ollama have no such route).
``push_moderation`` queues ``Error``/``Hang``/``Malformed``/``Drop`` steps for moderation requests only.

Wait for requests with ``wait_for_chat_requests`` (woken by each request, bounded by a timeout);
``in_flight`` counts chat requests received and not answered yet, so a test can prove a turn is
under way (e.g. held by a ``Hang``) before it kills the process making it.

It can also run in its own thread (``start_in_thread``) for a bot process started by a test, and as a
command (``python -m tests.support.fake_openai --port N``) with the default narrator reply.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ToolCallSpec:
    """One tool call the fake model makes: ``name`` and its ``arguments`` (a dict, sent as JSON text,
    or a raw string to send malformed JSON)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass
class Reply:
    """A successful completion. Usage numbers are tokens; ``delay`` is seconds before answering."""

    text: str | None = "The DM nods."
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None


@dataclass
class Error:
    """An error answer with an OpenAI-shaped body: ``{"error": {"message", "type", "code"}}``."""

    status: int
    code: str | None = None
    message: str = "error"
    type: str | None = None
    retry_after: float | None = None  # seconds, sent as Retry-After
    retry_after_ms: int | None = None  # sent as retry-after-ms
    request_id: str | None = None
    delay: float = 0.0


@dataclass
class Hang:
    """Never answer (until ``seconds`` pass); the client's timeout must fire."""

    seconds: float = 3600.0


@dataclass
class Malformed:
    """Answer 200 with this body (not a valid completion)."""

    body: bytes = b"{this is not json"
    content_type: str = "application/json"


@dataclass
class Drop:
    """Close the connection without sending a response."""


Step = Reply | Error | Hang | Malformed | Drop
ModerationStep = Error | Hang | Malformed | Drop

# OpenAI's moderation categories (omni-moderation-latest), in the API's order, and those that also
# apply to images (``category_applied_input_types`` lists ``["text"]`` for every category of a text).
MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
                         "sexual", "sexual/minors", "violence", "violence/graphic")
MODERATION_FLAG_AT = 0.5  # the fake's own per-category threshold for ``categories[...]`` and ``flagged``
MODERATION_BASELINE = 1e-6  # the score of a category a text does not touch (OpenAI's are tiny, never 0)
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"

Scorer = Callable[[str], Mapping[str, float]]
"""``text -> {category: score}`` for the categories a text touches (scores 0..1; the rest get
``MODERATION_BASELINE``)."""


def clean_scorer(text: str) -> Mapping[str, float]:
    """The default ``Scorer``: nothing is harmful."""
    return {}


def flag_words(words: Iterable[str] | Mapping[str, Mapping[str, float]], *, category: str = "violence",
               score: float = 0.95) -> Scorer:
    """A ``Scorer`` that scores a text containing one of ``words`` (case-insensitive substring).

    ``words`` is either a list (each word gives ``category`` the score ``score``) or a mapping
    ``word -> {category: score}``; a text with several words gets the highest score per category.
    """
    table: dict[str, dict[str, float]] = (
        {w.lower(): dict(v) for w, v in words.items()} if isinstance(words, Mapping)
        else {w.lower(): {category: score} for w in words})
    for scores in table.values():
        unknown = set(scores) - set(MODERATION_CATEGORIES)
        assert not unknown, f"not OpenAI moderation categories: {sorted(unknown)}"

    def scorer(text: str) -> Mapping[str, float]:
        found: dict[str, float] = {}
        lowered = text.lower()
        for word, scores in table.items():
            if word in lowered:
                for cat, value in scores.items():
                    found[cat] = max(found.get(cat, 0.0), value)
        return found

    return scorer


@dataclass
class RecordedRequest:
    """What the server received: method, path, headers (lower-cased names), JSON body, arrival time
    (``time.monotonic()`` seconds)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat ``messages`` of the JSON body (``AssertionError`` when the body has none)."""
        assert self.body is not None and "messages" in self.body, f"no chat messages in {self.method} {self.path}"
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages


def rough_token_count(messages: list[dict[str, Any]]) -> int:
    """A cheap stand-in for a tokenizer: 1 token per 4 characters of content, at least 1 a message."""
    total = 0
    for m in messages:
        content = m.get("content") or ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        total += max(1, len(str(content)) // 4) + 3
    return total


class FakeOpenAI:
    """The server. ``url`` is the base URL to give the client (ends in ``/v1``)."""

    def __init__(self, default: Callable[[dict[str, Any]], Step] | None = None,
                 port: int = 0, models: list[str] | None = None,
                 require_key: str | None = None, moderation: Scorer | None = clean_scorer) -> None:
        self.default = default
        self.queue: deque[Step] = deque()
        self.moderation = moderation  # None: this server has no moderation API (404)
        self.moderation_queue: deque[ModerationStep] = deque()
        self.requests: list[RecordedRequest] = []
        self.models = models or ["gpt-4o-mini", "gpt-4o"]
        self.require_key = require_key
        self._port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._counter = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.in_flight = 0  # chat requests received and not answered yet (e.g. held by a ``Hang``)

    # --- scripting ------------------------------------------------------------------------------
    def push(self, *steps: Step) -> None:
        """Queue steps; each answers one chat-completion request, in order."""
        with self._lock:
            self.queue.extend(steps)

    def push_moderation(self, *steps: ModerationStep) -> None:
        """Queue steps for moderation requests only; each answers one, in order, before ``moderation``."""
        with self._lock:
            self.moderation_queue.extend(steps)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the ``POST .../chat/completions`` requests."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def moderation_requests(self) -> list[RecordedRequest]:
        """Only the ``POST .../moderations`` requests."""
        return [r for r in self.requests if r.path.endswith("/moderations")]

    async def wait_for_chat_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` chat requests have arrived and return them all.

        Woken by each request as it is recorded (no polling), from the caller's event loop even when
        the server runs in its own thread. Raises ``AssertionError`` saying how many arrived if fewer
        than ``count`` did within ``timeout`` seconds.
        """
        return await self._wait_for(lambda: self.chat_requests, "chat", count, timeout)

    async def wait_for_moderation_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """As ``wait_for_chat_requests``, for moderation requests."""
        return await self._wait_for(lambda: self.moderation_requests, "moderation", count, timeout)

    async def _wait_for(self, seen: Callable[[], list[RecordedRequest]], what: str, count: int,
                        timeout: float) -> list[RecordedRequest]:
        loop = asyncio.get_running_loop()
        entry = (loop, asyncio.Event())
        with self._lock:
            self._waiters.append(entry)
        deadline = loop.time() + timeout
        try:
            while len(seen()) < count:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(f"the model endpoint received {len(seen())} {what} "
                                         f"request(s) in {timeout} s, expected at least {count}")
                entry[1].clear()
                if len(seen()) >= count:
                    break
                try:
                    await asyncio.wait_for(entry[1].wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            with self._lock:
                self._waiters.remove(entry)
        return seen()

    @property
    def url(self) -> str:
        """The base URL for the client, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        """The TCP port the started server listens on."""
        assert self._runner is not None, "server not started"
        return int(self._runner.addresses[0][1])  # (host, port) of the one TCP site

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> FakeOpenAI:
        """Listen on 127.0.0.1 (``port``, or a free one when 0) and return the server."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/moderations", self._moderations)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await self._site.start()
        return self

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeOpenAI:
        """Run the server on its own event loop in a daemon thread (for tests that block)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    def stop_thread(self) -> None:
        """Stop a server started with ``start_in_thread`` and its event loop."""
        if self._loop is not None:
            fut = asyncio.run_coroutine_threadsafe(self.stop(), self._loop)
            fut.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    # --- handlers -------------------------------------------------------------------------------
    def _record(self, request: web.Request, body: dict[str, Any] | None) -> None:
        self.requests.append(RecordedRequest(
            request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
            body, time.monotonic()))
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.require_key is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {self.require_key}":
            return self._error_response(Error(401, code="invalid_api_key",
                                              message="Incorrect API key provided."))
        return None

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except Exception:
            body = None
        self._record(request, body)
        self._counter += 1
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        with self._lock:
            step = self.moderation_queue.popleft() if self.moderation_queue else None
        if step is not None:
            return await self._answer_step(request, step)
        scorer = self.moderation
        if scorer is None:  # a server without the route: OpenAI's answer for an unknown URL
            return self._error_response(Error(404, message=f"Invalid URL (POST {request.path})",
                                              type="invalid_request_error"))
        texts = self._moderation_inputs(body)
        if texts is None:
            return self._error_response(Error(400, message="'input' is a required property, a string or an "
                                                           "array of strings", type="invalid_request_error"))
        model = str((body or {}).get("model") or DEFAULT_MODERATION_MODEL)
        results = [self._moderation_result(scorer(text), omni=model.startswith("omni")) for text in texts]
        return web.json_response({"id": f"modr-fake-{self._counter}", "model": model, "results": results},
                                 headers={"x-request-id": f"req_fake_{self._counter}"})

    @staticmethod
    def _moderation_inputs(body: dict[str, Any] | None) -> list[str] | None:
        """The texts to score: a string (one result), a list of strings (one each), or a list of
        multi-modal parts (one result for them all; only ``text`` parts are read)."""
        value = (body or {}).get("input")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return [" ".join(str(v.get("text", "")) for v in value if v.get("type") == "text")]
        return None

    @staticmethod
    def _moderation_result(touched: Mapping[str, float], *, omni: bool) -> dict[str, Any]:
        unknown = set(touched) - set(MODERATION_CATEGORIES)
        assert not unknown, f"the scorer gave categories OpenAI does not have: {sorted(unknown)}"
        scores = {c: float(touched.get(c, MODERATION_BASELINE)) for c in MODERATION_CATEGORIES}
        flags = {c: scores[c] >= MODERATION_FLAG_AT for c in MODERATION_CATEGORIES}
        result: dict[str, Any] = {"flagged": any(flags.values()), "categories": flags, "category_scores": scores}
        if omni:
            result["category_applied_input_types"] = {c: ["text"] for c in MODERATION_CATEGORIES}
        return result

    async def _answer_step(self, request: web.Request, step: Error | Hang | Malformed | Drop) -> web.StreamResponse:
        """Answer with a failure step (shared by chat and moderation requests)."""
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            return web.Response(status=504)
        if isinstance(step, Drop):
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if isinstance(step, Malformed):
            return web.Response(body=step.body, status=200, content_type=None,
                                headers={"Content-Type": step.content_type})
        if step.delay:
            await asyncio.sleep(step.delay)
        return self._error_response(step)

    def _next_step(self, body: dict[str, Any]) -> Step:
        with self._lock:
            if self.queue:
                return self.queue.popleft()
        if self.default is not None:
            return self.default(body)
        return Reply()

    def _error_response(self, step: Error) -> web.Response:
        headers = {"x-request-id": step.request_id or f"req_fake_{self._counter}"}
        if step.retry_after is not None:
            headers["Retry-After"] = str(step.retry_after)
        if step.retry_after_ms is not None:
            headers["retry-after-ms"] = str(step.retry_after_ms)
        payload = {"error": {"message": step.message, "type": step.type or "error",
                             "param": None, "code": step.code}}
        return web.json_response(payload, status=step.status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except Exception:
            body = None
        self.in_flight += 1  # counted before the request is visible, so a waiter woken by it sees it
        self._record(request, body)
        self._counter += 1
        try:
            return await self._answer(request, body)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any] | None) -> web.StreamResponse:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        step = self._next_step(body or {})
        if not isinstance(step, Reply):
            return await self._answer_step(request, step)
        if step.delay:
            await asyncio.sleep(step.delay)
        if (body or {}).get("stream"):
            return await self._stream(request, body or {}, step)
        return web.json_response(self._completion(body or {}, step),
                                 headers={"x-request-id": f"req_fake_{self._counter}", **step.headers})

    def _usage(self, body: dict[str, Any], step: Reply) -> dict[str, Any]:
        prompt = step.prompt_tokens if step.prompt_tokens is not None else rough_token_count(
    body.get("messages") or [])
        completion = step.completion_tokens if step.completion_tokens is not None else max(
    1, len(step.text or "") // 4)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": step.cached_tokens}}

    def _tool_calls(self, step: Reply) -> list[dict[str, Any]]:
        calls = []
        for i, tc in enumerate(step.tool_calls):
            args = tc.arguments if isinstance(tc.arguments, str) else json.dumps(tc.arguments)
            calls.append({"id": tc.id or f"call_{self._counter}_{i}", "type": "function",
                          "function": {"name": tc.name, "arguments": args}})
        return calls

    def _completion(self, body: dict[str, Any], step: Reply) -> dict[str, Any]:
        calls = self._tool_calls(step)
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        message: dict[str, Any] = {"role": "assistant", "content": step.text}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-fake-{self._counter}", "object": "chat.completion",
            "created": int(time.time()), "model": step.model or body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": self._usage(body, step),
        }

    async def _stream(self, request: web.Request, body: dict[str, Any], step: Reply) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream", "x-request-id": f"req_fake_{self._counter}"})
        await resp.prepare(request)
        base = {"id": f"chatcmpl-fake-{self._counter}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": step.model or body.get("model", "fake")}

        async def send(obj: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(obj)}\n\n".encode())

        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})
        text = step.text or ""
        for i in range(0, len(text), 12):
            await send({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 12]},
                                             "finish_reason": None}]})
        calls = self._tool_calls(step)
        for i, call in enumerate(calls):
            await send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                "index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}]},
                "finish_reason": None}]})
            args = call["function"]["arguments"]
            for j in range(0, len(args), 16):
                await send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": i, "function": {"arguments": args[j:j + 16]}}]}, "finish_reason": None}]})
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": self._usage(body, step)})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def narrator_default(body: dict[str, Any]) -> Step:
    """A default answer that reads like a DM: it names what the last user message said.

    Used by end-to-end tests and benchmarks where the content matters less than the shape.
    """
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    said = str((last_user or {}).get("content") or "")[:200].replace("\n", " ")
    return Reply(f"The DM considers the party's actions ({said}) and the story moves on.")


def main() -> None:  # pragma: no cover - used by bench/ and by hand
    """``python -m tests.support.fake_openai [--port N] [--latency S]``: serve the default narrator
    reply (after ``--latency`` seconds) and print ``fake OpenAI endpoint at URL`` once listening."""
    import argparse

    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()

    def answer(body: dict[str, Any]) -> Step:
        reply = narrator_default(body)
        if isinstance(reply, Reply):
            reply.delay = args.latency
        return reply

    async def serve() -> None:
        server = FakeOpenAI(default=answer, port=args.port)
        await server.start()
        print(f"fake OpenAI endpoint at {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
