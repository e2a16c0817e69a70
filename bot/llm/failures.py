"""How the model endpoint's failures are read: which are worth retrying, how long the server asks us
to wait, and which typed ``bot.llm.errors`` error each becomes. Pure functions over openai's
exceptions; used by the client's one retry layer (``bot.llm.client``).
"""

from __future__ import annotations

from typing import Any

import openai

from bot.llm import errors as E


def _header(exc: BaseException, name: str) -> str | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers.get(name) if headers is not None else None


def retry_after_seconds(exc: BaseException) -> float | None:
    """What the server asked us to wait, seconds (``retry-after-ms`` first, then ``Retry-After``)."""
    ms = _header(exc, "retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    seconds = _header(exc, "retry-after")
    if seconds:
        try:
            return max(0.0, float(seconds))
        except ValueError:
            return None  # an HTTP date: fall back to backoff
    return None


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying (see module docstring)."""
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return exc.code != "insufficient_quota"
        return exc.status_code in (408, 409) or exc.status_code >= 500
    # an error event inside a stream (the SDK's bare APIError: no status): the server failed mid-reply
    return isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError)


def to_typed(exc: BaseException, attempts: int) -> E.LLMError:
    """Map an openai exception to the bot's typed error (keeps status and request id, never the key)."""
    rid = getattr(exc, "request_id", None) or _header(exc, "x-request-id")
    if isinstance(exc, E.LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return E.RequestTimedOut(f"no answer in time after {attempts} attempt(s)", attempts=attempts, request_id=rid)
    if isinstance(exc, openai.APIConnectionError):
        return E.ServiceUnavailable(f"model endpoint unreachable: {connection_detail(exc)}",
                                    attempts=attempts)
    if isinstance(exc, openai.APIResponseValidationError):
        return E.MalformedResponse("endpoint answered with an invalid body", status=exc.status_code,
                                   request_id=rid, attempts=attempts)
    if isinstance(exc, openai.APIStatusError):
        status, code = exc.status_code, exc.code
        msg = f"HTTP {status}" + (f" ({code})" if code else "")
        kw: dict[str, Any] = dict(status=status, request_id=rid, attempts=attempts)
        if status in (401, 403):
            return E.AuthenticationFailed(msg, **kw, admin_hint="Check OPENAI_API_KEY and OPENAI_BASE_URL.")
        if status == 429 and code == "insufficient_quota":
            return E.QuotaExhausted(msg, **kw, admin_hint="The model account is out of credit.")
        if status == 429:
            return E.RateLimited(msg, **kw)
        if code == "context_length_exceeded":
            return E.ContextTooLong(msg, **kw)
        if status in (408, 409) or status >= 500:
            return E.ServiceUnavailable(msg, **kw)
        if code == "content_filter" or code == "content_policy_violation":
            return E.ContentRefused(msg, **kw)
        return E.BadRequest(msg, **kw)
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return E.ServiceUnavailable(f"the endpoint reported an error mid-stream: {exc.message[:200]}",
                                    request_id=rid, attempts=attempts)
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        return E.MalformedResponse(f"endpoint answered with an unreadable body ({type(exc).__name__})",
                                   attempts=attempts)
    return E.LLMError(f"model call failed ({type(exc).__name__})", attempts=attempts)


def connection_detail(exc: BaseException) -> str:
    """A short reason for a failed connection: "connection refused", "host not found", ..."""
    seen: BaseException | None = exc
    chain: list[BaseException] = []
    while seen is not None and seen not in chain and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host not found"
    if "ssl" in text or "certificate" in text:
        return "TLS handshake failed"
    cause = chain[-1]
    return f"cannot connect ({type(cause).__name__})"
