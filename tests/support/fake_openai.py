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

Steps: ``Reply`` (text and/or tool calls, usage, optional delay, streaming pace and mid-stream
failure), ``Error`` (status, OpenAI-style error body, headers), ``Hang`` (never answers until the
client gives up), ``Malformed`` (200 with a body that is not a completion), ``Drop`` (close the
connection without an answer).

Streaming (``"stream": true``) is answered as OpenAI does: ``text/event-stream`` headers at once, then
``data: {chunk}`` events (a role chunk, content chunks, tool-call chunks, a chunk with the
``finish_reason``, a usage chunk when ``stream_options.include_usage`` asks and ``Reply.stream_usage``
allows) and ``data: [DONE]``. By default the text goes out in 12-character chunks with no pause.
``Reply(first_token_s=..., tokens_per_s=...)`` makes it realistic: the headers still go at once, the
role chunk and first content chunk after ``first_token_s`` (time to first token), then one chunk per
token-like piece of the text (``split_tokens``) paced at ``tokens_per_s``, each scheduled from the first
token's time (token ``i`` at ``first + i / tokens_per_s``), so a long reply does not drift. Each chat
request's ``RecordedRequest`` gets ``headers_at``, ``first_token_at`` and ``last_token_at``
(``time.perf_counter()`` on the server, as they happen) for a benchmark of "model's first token ->
first visible text".

Failures mid-stream (``Reply(fail_after_chars=N, fail_mode=...)``, after N characters of text), and
what openai-python 3.57's ``AsyncStream`` raises to the code iterating it (checked by
``tests/support/test_fake_openai.py``):

* ``fail_mode="drop"``: the TCP connection is closed (flushed, FIN) with no ``[DONE]``, no final
  chunk and no end of the chunked body. httpx2 raises ``RemoteProtocolError`` ("incomplete chunked
  read") and the SDK turns it into ``openai.APIConnectionError`` (exactly that class, not
  ``APITimeoutError``; ``__cause__`` is the ``httpx2.RemoteProtocolError``).
* ``fail_mode="error_event"``: ``data: {"error": {"message", "type": "server_error", "param": null,
  "code": null}}`` as OpenAI sends mid-stream, then the body ends normally (no ``[DONE]``). The SDK
  raises ``openai.APIError`` itself (the base class: no ``status_code``, it is not an
  ``APIStatusError``), with ``message`` the error's message and ``body`` the ``error`` object.

Endpoints that are less than OpenAI: ``FakeOpenAI(streaming=False)`` answers ``"stream": true`` with a
plain ``application/json`` completion (the SDK then yields NO chunks and raises nothing: its SSE
decoder finds no ``data:`` line in the JSON); ``Reply(stream_usage=False)`` leaves out the usage chunk
even when ``stream_options.include_usage`` asks; ``FakeOpenAI(reject_stream_options=True)`` answers a
request carrying ``stream_options`` with 400 ``Unrecognized request argument supplied: stream_options``
(``openai.BadRequestError``).

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
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

# A token-like piece of text, for paced streaming: a word of at most 8 letters/digits with the
# whitespace before it (" door", " creaks"), a single punctuation mark ("." ","), or trailing
# whitespace. Longer words are split every 8 characters. Close enough to a BPE tokenizer on English
# (about 4-5 characters a token, a space belongs to the word after it) for pacing and chunk counts,
# and the pieces always join back into the text.
TOKEN_PATTERN = re.compile(r"\s*(?:\w{1,8}|[^\w\s])|\s+")
DEFAULT_CHUNK_CHARS = 12  # the unpaced default: fixed 12-character content chunks
STREAM_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"

FailMode = Literal["drop", "error_event"]


def split_tokens(text: str) -> list[str]:
    """The token-like pieces of ``text`` (``TOKEN_PATTERN``); ``"".join(split_tokens(t)) == t``."""
    return TOKEN_PATTERN.findall(text)


@dataclass
class ToolCallSpec:
    """One tool call the fake model makes: ``name`` and its ``arguments`` (a dict, sent as JSON text,
    or a raw string to send malformed JSON)."""

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None


@dataclass
class Reply:
    """A successful completion. Usage numbers are tokens; ``delay`` is seconds before answering
    (before the response headers).

    Streaming pace (both None: today's 12-character chunks, no pause; either set: one content chunk
    per ``split_tokens`` piece, and tool-call arguments likewise):

    * ``first_token_s``: seconds between the response headers and the role chunk + first content
      chunk (time to first token).
    * ``tokens_per_s``: content chunks paced at this rate, token ``i`` no earlier than the first
      token's time + ``i / tokens_per_s`` (tool-call argument pieces continue the same schedule).

    A non-streamed answer (or any answer of a ``FakeOpenAI(streaming=False)``) waits the whole
    generation, ``first_token_s + (pieces - 1) / tokens_per_s``, before it is sent.

    Failure mid-stream (streamed answers only; a non-streamed answer ignores it): with
    ``fail_after_chars`` set, exactly that many characters of the text are sent (the last piece cut
    if need be; 0 = none, only the role chunk; more than the text = all of it, then no tool calls),
    then ``fail_mode`` ``"drop"`` closes the connection (SDK: ``openai.APIConnectionError``) or
    ``"error_event"`` sends OpenAI's mid-stream ``{"error": {...}}`` event with ``fail_message``
    and ends the body without ``[DONE]`` (SDK: ``openai.APIError``).

    ``stream_usage=False``: a streamed answer has no usage chunk even when
    ``stream_options.include_usage`` asks (as servers that ignore ``stream_options`` do).
    """

    text: str | None = "The DM nods."
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    fail_after_chars: int | None = None
    fail_mode: FailMode = "drop"
    fail_message: str = STREAM_ERROR_MESSAGE
    stream_usage: bool = True
    tool_index_zero: bool = False  # stream every tool call with index 0, as Ollama's compatible API does

    def __post_init__(self) -> None:
        if self.fail_mode not in ("drop", "error_event"):
            raise ValueError(f"fail_mode must be 'drop' or 'error_event', not {self.fail_mode!r}")
        if self.tokens_per_s is not None and self.tokens_per_s <= 0:
            raise ValueError(f"tokens_per_s must be > 0, not {self.tokens_per_s}")
        if self.first_token_s is not None and self.first_token_s < 0:
            raise ValueError(f"first_token_s must be >= 0, not {self.first_token_s}")
        if self.fail_after_chars is not None and self.fail_after_chars < 0:
            raise ValueError(f"fail_after_chars must be >= 0, not {self.fail_after_chars}")

    @property
    def paced(self) -> bool:
        """Whether the text is streamed in token-like pieces (``first_token_s`` or ``tokens_per_s`` set)."""
        return self.first_token_s is not None or self.tokens_per_s is not None

    def pieces(self, text: str, chunk_chars: int = DEFAULT_CHUNK_CHARS) -> list[str]:
        """How ``text`` is cut into chunks: ``split_tokens`` when paced, else ``chunk_chars`` slices."""
        if self.paced:
            return split_tokens(text)
        return [text[i:i + chunk_chars] for i in range(0, len(text), chunk_chars)]

    def generation_s(self) -> float:
        """Seconds the whole answer takes to generate at this pace (0 when unpaced)."""
        n = len(self.pieces(self.text or "")) + sum(
            len(self.pieces(a if isinstance(a, str) else json.dumps(a), 16))
            for a in (tc.arguments for tc in self.tool_calls))
        rate_s = (n - 1) / self.tokens_per_s if self.tokens_per_s and n > 1 else 0.0
        return (self.first_token_s or 0.0) + rate_s


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
    (``at``: ``time.monotonic()`` seconds).

    Timings on the server's ``time.perf_counter()`` clock, filled in as they happen (read them once
    the answer is over): ``received_at`` (arrival), ``headers_at`` (the 200 response of a ``Reply``
    was started: headers of a stream, or the whole JSON answer), ``first_token_at`` / ``last_token_at``
    (the first / last chunk carrying text content was written; None for a non-streamed answer and a
    stream without text, e.g. tool calls only or ``fail_after_chars=0``).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float
    received_at: float = field(default_factory=time.perf_counter)
    headers_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None

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
                 require_key: str | None = None, moderation: Scorer | None = clean_scorer,
                 streaming: bool = True, reject_stream_options: bool = False) -> None:
        self.default = default
        self.streaming = streaming  # False: ``"stream": true`` gets a plain JSON completion
        self.reject_stream_options = reject_stream_options  # True: 400 for a request with ``stream_options``
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
    def _record(self, request: web.Request, body: dict[str, Any] | None) -> RecordedRequest:
        record = RecordedRequest(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                                 body, time.monotonic(), time.perf_counter())
        self.requests.append(record)
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return record

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
        record = self._record(request, body)
        self._counter += 1
        try:
            return await self._answer(request, body, record)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any] | None,
                      record: RecordedRequest) -> web.StreamResponse:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        if self.reject_stream_options and "stream_options" in (body or {}):
            return self._error_response(Error(400, message="Unrecognized request argument supplied: stream_options",
                                              type="invalid_request_error"))
        step = self._next_step(body or {})
        if not isinstance(step, Reply):
            return await self._answer_step(request, step)
        if step.delay:
            await asyncio.sleep(step.delay)
        if (body or {}).get("stream") and self.streaming:
            return await self._stream(request, body or {}, step, record)
        await _sleep_until(time.perf_counter() + step.generation_s())
        record.headers_at = time.perf_counter()
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

    async def _stream(self, request: web.Request, body: dict[str, Any], step: Reply,
                      record: RecordedRequest) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream", "x-request-id": f"req_fake_{self._counter}"})
        await resp.prepare(request)  # a StreamResponse sends its headers here, before any chunk
        record.headers_at = time.perf_counter()
        base = {"id": f"chatcmpl-fake-{self._counter}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": step.model or body.get("model", "fake")}
        rate = step.tokens_per_s
        first_at: float | None = None  # when the first token-carrying chunk was written
        sent_tokens = 0

        async def send(obj: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(obj)}\n\n".encode())

        async def send_token(delta: dict[str, Any], *, text: bool) -> None:
            nonlocal first_at, sent_tokens
            if rate is not None and first_at is not None:
                await _sleep_until(first_at + sent_tokens / rate)
            await send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            now = time.perf_counter()
            if first_at is None:
                first_at = now
            sent_tokens += 1
            if text:
                if record.first_token_at is None:
                    record.first_token_at = now
                record.last_token_at = now

        if step.first_token_s:
            await _sleep_until(record.headers_at + step.first_token_s)
        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})
        text = step.text or ""
        limit = step.fail_after_chars
        sent_chars = 0
        for piece in step.pieces(text):
            if limit is not None and sent_chars + len(piece) > limit:
                piece = piece[:limit - sent_chars]
                if piece:
                    await send_token({"content": piece}, text=True)
                return await self._fail_stream(request, resp, step)
            await send_token({"content": piece}, text=True)
            sent_chars += len(piece)
        if limit is not None:
            return await self._fail_stream(request, resp, step)
        calls = self._tool_calls(step)
        for n, call in enumerate(calls):
            i = 0 if step.tool_index_zero else n
            await send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                "index": i, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}]},
                "finish_reason": None}]})
            for piece in step.pieces(call["function"]["arguments"], 16):
                await send_token({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, text=False)
        finish = step.finish_reason or ("tool_calls" if calls else "stop")
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if step.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": self._usage(body, step)})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _fail_stream(self, request: web.Request, resp: web.StreamResponse, step: Reply) -> web.StreamResponse:
        """End a stream the way ``step.fail_mode`` says (see ``Reply``)."""
        if step.fail_mode == "error_event":
            error = {"message": step.fail_message, "type": "server_error", "param": None, "code": None}
            await resp.write(f"data: {json.dumps({'error': error})}\n\n".encode())
            await resp.write_eof()  # the body ends properly, without [DONE]
            return resp
        assert request.transport is not None
        request.transport.close()  # what was written is flushed, then FIN: no [DONE], no last chunk
        return resp


async def _sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (never wakes early by that clock)."""
    while (remaining := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(remaining)


def narrator_default(body: dict[str, Any]) -> Step:
    """A default answer that reads like a DM: it names what the players' actions in the last user
    message said (the ``<<<...>>>`` parts; else its first 200 characters), never the party's sheet
    lines the message also carries, which the output guard would take for a copied prompt.

    Used by end-to-end tests and benchmarks where the content matters less than the shape.
    """
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    content = str((last_user or {}).get("content") or "")
    actions = re.findall(r"<<<(.*?)>>>", content, flags=re.DOTALL)
    said = ("; ".join(a.strip() for a in actions) if actions else content)[:200].replace("\n", " ")
    return Reply(f"The DM considers the party's actions ({said}) and the story moves on.")


def main() -> None:  # pragma: no cover - used by bench/ and by hand
    """``python -m tests.support.fake_openai [--port N] [--latency S] [--first-token-s S]
    [--tokens-per-s R]``: serve the default narrator reply (after ``--latency`` seconds, streamed at
    the given pace) and print ``fake OpenAI endpoint at URL`` once listening."""
    import argparse

    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--first-token-s", type=float, default=None,
                        help="seconds from the response headers to the first streamed token")
    parser.add_argument("--tokens-per-s", type=float, default=None, help="pace of the streamed tokens")
    args = parser.parse_args()

    def answer(body: dict[str, Any]) -> Step:
        reply = narrator_default(body)
        if isinstance(reply, Reply):
            reply.delay = args.latency
            reply.first_token_s = args.first_token_s
            reply.tokens_per_s = args.tokens_per_s
        return reply

    async def serve() -> None:
        server = FakeOpenAI(default=answer, port=args.port)
        await server.start()
        print(f"fake OpenAI endpoint at {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
