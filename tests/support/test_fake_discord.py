"""The Discord stand-in answers the way discord.py needs: exact JSON content-type, ids that carry the
current time (interaction expiry is computed from them), and a REST log of what was sent."""

from __future__ import annotations

import time

import aiohttp
import discord

from tests.support.fake_discord import FakeDiscord


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
