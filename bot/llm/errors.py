"""Typed errors of the model client. Each keeps the endpoint's request id and HTTP status (when there
was an answer) and never the API key. ``player_message`` is a sentence for the table; ``admin_hint``
says what an admin can do about it."""

from __future__ import annotations

from bot.errors import BotError
from bot.llm.types import ChatResult


class LLMError(BotError):
    """Base of model-client errors.

    Args:
        message: log-facing description (never contains the key or the prompt).
        status: HTTP status code, or None when no answer came (timeout, connection).
        request_id: the endpoint's ``x-request-id`` header, if any.
        attempts: HTTP attempts made before giving up.

    ``partial``: for a stream that failed after text arrived, the ``ChatResult`` of what arrived
    (usage estimated unless the endpoint reported it), so the call is still counted against usage
    and budgets; None otherwise.
    """

    player_message_default = "The DM lost their train of thought. Try again in a moment."
    partial: ChatResult | None = None

    def __init__(self, message: str = "", *, status: int | None = None, request_id: str | None = None,
                 attempts: int = 1, player_message: str | None = None,
                 admin_hint: str | None = None) -> None:
        super().__init__(message, player_message=player_message or self.player_message_default,
                         admin_hint=admin_hint)
        self.status = status
        self.request_id = request_id
        self.attempts = attempts


class AuthenticationFailed(LLMError):
    """401/403: the endpoint refused the API key."""

    player_message_default = ("The DM can't reach their notes: the model endpoint refused the bot's key. "
                              "An admin needs to fix it.")


class QuotaExhausted(LLMError):
    """429 with code ``insufficient_quota``: the account is out of credit. Never retried."""

    player_message_default = ("The DM is out of ink: the model account has run out of credit. "
                              "An admin needs to top it up.")


class RateLimited(LLMError):
    """429 rate limit that outlasted every retry."""

    player_message_default = "The DM needs a moment: the model is busy. Try again shortly."


class ServiceUnavailable(LLMError):
    """5xx, 408, 409 or a connection failure that outlasted every retry."""

    player_message_default = "The DM's connection to the model is down. Try again in a little while."


class RequestTimedOut(LLMError):
    """No answer within the request timeout, on every attempt, or the total deadline passed."""

    player_message_default = "The DM took too long to answer. Try again in a moment."


class BadRequest(LLMError):
    """400/404/422 and other non-retryable refusals of the request itself (wrong model name, ...)."""

    player_message_default = "The DM's model refused the request. An admin should check the model setting."


class ContextTooLong(BadRequest):
    """400 with code ``context_length_exceeded``: the prompt is larger than the model's context."""

    player_message_default = "The story is too long for this model's memory. An admin can lower the history budget."


class ContentRefused(LLMError):
    """The endpoint's content filter refused the request or cut the reply (``content_filter``)."""

    player_message_default = "The DM won't narrate that. Try a different action."


class MalformedResponse(LLMError):
    """The endpoint answered 200 with something that is not a chat completion."""

    player_message_default = "The DM's answer came back garbled. Try again."


class ModerationUnavailable(LLMError):
    """The endpoint has no moderation API: ``/moderations`` answered 404, 405 or 501, or answered
    with a body that is not a moderation result (Ollama, llama.cpp's server and most local servers
    have none). Never retried."""

    player_message_default = ("This server's model endpoint has no moderation API, so moderation can't be "
                              "used here. OpenAI's endpoint has one (omni-moderation-latest); Ollama and "
                              "llama.cpp don't.")
    admin_hint_default = ("Moderation needs an endpoint with POST /v1/moderations (OpenAI's); leave the "
                          "`moderation` option off with this OPENAI_BASE_URL.")

    def __init__(self, message: str = "", *, status: int | None = None, request_id: str | None = None,
                 attempts: int = 1, player_message: str | None = None, admin_hint: str | None = None) -> None:
        super().__init__(message, status=status, request_id=request_id, attempts=attempts,
                         player_message=player_message, admin_hint=admin_hint or self.admin_hint_default)
