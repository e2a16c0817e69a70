"""The Discord stand-in answers the way discord.py needs: exact JSON content-type, ids that carry the
current time (interaction expiry is computed from them), a REST log of what was sent, and Discord's
per-channel message rate limits with the headers discord.py paces itself by."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
import discord
import pytest

from tests.support.fake_discord import MESSAGE_BUCKET_HASHES, FakeDiscord

T = TypeVar("T")


async def test_rest_bodies_are_exactly_application_json_and_logged() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["id"] == fake.bot_user["id"]
        async with http.post(f"{fake.api_base}/channels/{fake.channel_id}/messages",
                             json={"content": "hello", "allowed_mentions": {"parse": []}}) as resp:
            assert resp.status == 200
            assert (await resp.json())["content"] == "hello"
        assert [m["content"] for m in fake.messages_in(fake.channel_id)] == ["hello"]
        assert [(c.method, c.path) for c in fake.rest_log][-1] == ("POST", f"/channels/{fake.channel_id}/messages")


async def test_ids_are_snowflakes_of_the_current_time() -> None:
    async with FakeDiscord() as fake:
        first, second = fake._snowflake(), fake._snowflake()
        assert second != first
        created = discord.utils.snowflake_time(second).timestamp()
        assert abs(created - time.time()) < 5


# --- per-channel message rate limits -------------------------------------------------------------------

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After",
                "X-RateLimit-Bucket")


async def within(awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """``await awaitable``, failing the test with ``what`` if it takes longer than ``seconds``."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} did not finish within {seconds} s") from None


def raw_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))


async def post(http: aiohttp.ClientSession, fake: FakeDiscord, content: str,
               channel_id: int | None = None) -> tuple[int, dict[str, str], Any]:
    """POST a message with a raw client: (status, headers, JSON body)."""
    url = f"{fake.api_base}/channels/{channel_id or fake.channel_id}/messages"
    async with http.post(url, json={"content": content}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def edit(http: aiohttp.ClientSession, fake: FakeDiscord, message_id: str,
               content: str) -> tuple[int, dict[str, str], Any]:
    async with http.patch(f"{fake.api_base}/channels/{fake.channel_id}/messages/{message_id}",
                          json={"content": content}) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def delete(http: aiohttp.ClientSession, fake: FakeDiscord, message_id: str) -> tuple[int, dict[str, str]]:
    async with http.delete(f"{fake.api_base}/channels/{fake.channel_id}/messages/{message_id}") as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


@contextlib.asynccontextmanager
async def discord_http(fake: FakeDiscord) -> AsyncIterator[discord.http.HTTPClient]:
    """discord.py's own REST client, logged in to the stand-in (``Route.BASE`` restored afterwards)."""
    saved = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await within(http.static_login("fake-token"), 10, "discord.py's login (GET /users/@me)")
        yield http
    finally:
        await http.close()
        discord.http.Route.BASE = saved


async def send_with(http: discord.http.HTTPClient, channel_id: int, content: str) -> dict[str, Any]:
    with discord.http.handle_message_parameters(content=content) as params:
        return dict(await http.send_message(channel_id, params=params))


async def edit_with(http: discord.http.HTTPClient, channel_id: int, message_id: str, content: str) -> None:
    with discord.http.handle_message_parameters(content=content) as params:
        await http.edit_message(channel_id, message_id, params=params)


async def test_the_sixth_create_in_a_window_is_429_with_discords_body_and_headers_and_is_not_posted() -> None:
    async with FakeDiscord() as fake, raw_client() as http:
        channel = str(fake.channel_id)
        for i in range(5):
            status, headers, _ = await post(http, fake, f"m{i}")
            assert status == 200
            assert all(h in headers for h in RATE_HEADERS), headers
            assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == str(4 - i)
            assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["create"]
            reset_after = float(headers["X-RateLimit-Reset-After"])
            assert 0 < reset_after <= 5.0
            assert abs(float(headers["X-RateLimit-Reset"]) - (time.time() + reset_after)) < 0.5
        assert fake.buckets_exhausted == 1 and fake.rate_limited == []

        status, headers, body = await post(http, fake, "one too many")
        assert status == 429
        assert headers["Content-Type"] == "application/json"
        assert set(body) == {"message", "retry_after", "global"}
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert isinstance(body["retry_after"], float) and 0 < body["retry_after"] <= 5.0
        assert headers["Retry-After"] == str(math.ceil(body["retry_after"]))
        assert headers["X-RateLimit-Scope"] == "user"
        assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"] == "5"
        assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["create"]
        assert float(headers["X-RateLimit-Reset-After"]) == body["retry_after"]
        assert headers["Via"]  # discord.py treats a 429 without Via as a Cloudflare ban

        assert [m["content"] for m in fake.messages_in(fake.channel_id)] == [f"m{i}" for i in range(5)]
        [hit] = fake.rate_limited
        assert (hit.method, hit.path, hit.channel_id, hit.bucket) == (
            "POST", f"/channels/{channel}/messages", channel, "create")
        assert hit.retry_after == body["retry_after"] and hit.at <= time.monotonic()
        assert fake.buckets_exhausted == 1  # the 429 does not exhaust the bucket again
        assert fake.requests_in_bucket(fake.channel_id, "create") == 5
        assert fake.requests_in_bucket(fake.channel_id, "create", include_limited=True) == 6
        assert fake.bucket_remaining(fake.channel_id, "create") == 0

        # the limit is per channel: the other channel has its own window
        other = fake.channel_ids[1]
        status, headers, _ = await post(http, fake, "elsewhere", channel_id=other)
        assert status == 200 and headers["X-RateLimit-Remaining"] == "4"
        assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["create"]  # same hash, other major parameter
        assert fake.requests_in_bucket(other, "create") == 1


async def test_creates_edits_and_deletes_are_separate_buckets() -> None:
    async with FakeDiscord() as fake, raw_client() as http:
        ids = []
        for i in range(5):
            status, _, msg = await post(http, fake, f"m{i}")
            assert status == 200
            ids.append(msg["id"])
        for i in range(5):
            status, headers, _ = await edit(http, fake, ids[0], f"edit {i}")
            assert status == 200, "edits do not take from the create bucket"
            assert headers["X-RateLimit-Remaining"] == str(4 - i)
            assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["edit"]
        status, headers, body = await edit(http, fake, ids[0], "edit over the limit")
        assert status == 429 and body["message"] == "You are being rate limited."
        assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["edit"]
        assert [e["content"] for e in fake.edits_of(ids[0])] == [f"edit {i}" for i in range(5)]  # not performed
        status, _, _ = await post(http, fake, "create over the limit")
        assert status == 429, "the create bucket is still empty"

        for i, mid in enumerate(ids):
            status, headers = await delete(http, fake, mid)
            assert status == 204 and headers["X-RateLimit-Remaining"] == str(4 - i)
            assert headers["X-RateLimit-Bucket"] == MESSAGE_BUCKET_HASHES["delete"]
        status, _ = await delete(http, fake, ids[0])
        assert status == 429

        assert len(set(MESSAGE_BUCKET_HASHES.values())) == 3
        assert fake.buckets_exhausted == 3
        assert [(h.method, h.bucket) for h in fake.rate_limited] == [
            ("PATCH", "edit"), ("POST", "create"), ("DELETE", "delete")]
        assert [fake.requests_in_bucket(fake.channel_id, b) for b in ("create", "edit", "delete")] == [5, 5, 5]


async def test_the_window_starts_with_its_first_request_and_resets_after_the_period() -> None:
    period = 0.5
    async with FakeDiscord(message_rate_limit=(2, period)) as fake, raw_client() as http:
        first_at = time.monotonic()
        _, first, _ = await post(http, fake, "a")
        _, second, _ = await post(http, fake, "b")
        assert (first["X-RateLimit-Remaining"], second["X-RateLimit-Remaining"]) == ("1", "0")
        # a fixed window: the second request's reset is the first's, so less time is left
        assert float(second["X-RateLimit-Reset-After"]) <= float(first["X-RateLimit-Reset-After"]) <= period
        status, _, body = await post(http, fake, "c")
        assert status == 429 and body["retry_after"] <= period

        await fake.wait_for(lambda: fake.bucket_remaining(fake.channel_id) == 2, timeout=5,
                            what=f"the create window of {period} s to end")
        assert time.monotonic() - first_at >= period
        status, headers, _ = await post(http, fake, "d")
        assert status == 200 and headers["X-RateLimit-Remaining"] == "1"
        assert float(headers["X-RateLimit-Reset-After"]) > period - 0.1  # a new window, started by this one
        assert [m["content"] for m in fake.messages_in(fake.channel_id)] == ["a", "b", "d"]
        assert fake.buckets_exhausted == 1 and len(fake.rate_limited) == 1


async def test_without_a_message_rate_limit_nothing_is_limited_or_announced() -> None:
    with pytest.raises(ValueError, match="message_rate_limit"):
        FakeDiscord(message_rate_limit=(0, 5.0))
    async with FakeDiscord(message_rate_limit=None) as fake, raw_client() as http:
        for i in range(8):
            status, headers, _ = await post(http, fake, f"m{i}")
            assert status == 200 and "X-RateLimit-Remaining" not in headers
        assert len(fake.messages_in(fake.channel_id)) == 8
        assert fake.rate_limited == [] and fake.buckets_exhausted == 0


async def test_discord_py_waits_for_the_bucket_instead_of_getting_429() -> None:
    limit, period = 5, 1.0
    async with FakeDiscord(message_rate_limit=(limit, period)) as fake, discord_http(fake) as http:
        started = time.monotonic()
        sent = []
        for i in range(8):
            sent.append(await within(send_with(http, fake.channel_id, f"m{i}"), 10, f"discord.py's send of m{i}"))
        elapsed = time.monotonic() - started
        assert fake.rate_limited == [], f"discord.py got 429s: {fake.rate_limited}"
        assert [m["content"] for m in fake.messages_in(fake.channel_id)] == [f"m{i}" for i in range(8)]
        assert elapsed >= period, f"8 posts took {elapsed:.2f} s: discord.py did not wait for the window"
        assert fake.buckets_exhausted >= 1
        creates = [r for r in fake.bucket_log if r.bucket == "create"]
        assert creates[limit].at - creates[0].at >= period  # the 6th went in the next window

        # edits in a row, and concurrent posts, are paced by discord.py too
        for i in range(8):
            await within(edit_with(http, fake.channel_id, sent[0]["id"], f"e{i}"), 10, f"discord.py's edit e{i}")
        await within(asyncio.gather(*(send_with(http, fake.channel_id, f"c{i}") for i in range(8))), 20,
                     "8 concurrent posts through discord.py")
        assert fake.rate_limited == [], f"discord.py got 429s: {fake.rate_limited}"
        assert len(fake.edits_of(sent[0]["id"])) == 8
        assert len(fake.messages_in(fake.channel_id)) == 16


async def test_discord_py_retries_a_429_after_retry_after_and_posts_once() -> None:
    """Two clients share a channel's bucket (e.g. two bot processes): the second one's first post is
    over the limit and discord.py must read the 429 as Discord's, wait ``retry_after`` and retry."""
    period = 0.5
    async with FakeDiscord(message_rate_limit=(5, period)) as fake, raw_client() as raw, discord_http(fake) as http:
        for i in range(5):
            assert (await post(raw, fake, f"other {i}"))[0] == 200
        await within(send_with(http, fake.channel_id, "mine"), 10, "discord.py's send after a 429")
        assert len(fake.rate_limited) >= 1 and fake.rate_limited[0].bucket == "create"
        assert [m["content"] for m in fake.messages_in(fake.channel_id)].count("mine") == 1
