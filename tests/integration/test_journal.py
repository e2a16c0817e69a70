"""The journal's web server over HTTP on 127.0.0.1 (aiohttp's client; the browser tests are in
tests/e2e/test_journal_browser.py): what a page shows and never shows, escaping, headers, pagination,
the usage chart, tokens (hashed, revoked, rate-limited misses), on each backend."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.config import load_settings
from bot.game.api import Actor, ChannelRef
from bot.game.journal_links import JournalLinks
from bot.game.registry import SessionRegistry
from bot.journal.server import MISSES_PER_MINUTE, SECURITY_HEADERS, JournalServer, token_hash
from bot.store import Store
from tests.support.journal_data import PLAYER_IDS, SECRET_TEXT, seed_campaign

TODAY = dt.datetime.now(dt.UTC).date()
DAYS = tuple((TODAY - dt.timedelta(days=n)).isoformat() for n in (3, 2, 0))  # within the chart's 30 days


@asynccontextmanager
async def journal(store: Store, tmp_path: Any) -> AsyncIterator[tuple[str, JournalLinks]]:
    settings = load_settings(None, data_dir=str(tmp_path), journal_base_url="https://dm.example.com",
                             journal_listen="127.0.0.1:0")
    server = JournalServer(store, settings)
    port = await server.start("127.0.0.1", 0)
    registry = SessionRegistry(store=store, settings=settings, configs=None, clock=None, assemble=None)  # type: ignore[arg-type]
    try:
        yield f"http://127.0.0.1:{port}", JournalLinks(store, settings, registry)
    finally:
        await server.close()


async def issue(store: Store, kind: str, campaign_id: int | None, guild_id: int | None) -> str:
    import secrets

    token = secrets.token_urlsafe(24)
    await store.journal.issue(token_hash=token_hash(token), kind=kind, campaign_id=campaign_id,  # type: ignore[arg-type]
                              guild_id=guild_id, created_by=1)
    return token


async def get(base: str, path: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(base + path) as response:
        return response.status, dict(response.headers), await response.text()


async def test_the_campaign_page_shows_the_table_and_never_a_secret_an_id_or_raw_html(store: Store, tmp_path) -> None:
    seeded = await seed_campaign(store, turns=120)
    token = await issue(store, "campaign", seeded.campaign_id, seeded.guild_id)
    async with journal(store, tmp_path) as (base, _):
        status, headers, html = await get(base, f"/j/{token}")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert "<h1>The Sunken Crypt</h1>" in html and "A drowned temple under the harbour" in html
    assert "HP 9/10 · AC 14" in html and "Find the idol" in html and "Marta" in html and "Ghoul" in html
    assert "The party came to the drowned temple and met Marta." in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "I shout &lt;img src=x onerror=&#34;alert(2)&#34;&gt; and &lt;b&gt;bold&lt;/b&gt; &amp; run" in html
    assert SECRET_TEXT not in html and "Marta&#39;s secret" not in html and "Marta's secret" not in html
    assert all(str(pid) not in html for pid in PLAYER_IDS) and str(seeded.guild_id) not in html
    assert "page 1 of 5" in html  # 240 messages, 50 a page, the newest first
    assert html.count('class="message ') == 50 and "The DM answers turn 120." in html
    assert "🎲 Aria (Perception): 1d20 (12) + 5 = `17`" in html


async def test_pages_go_back_to_the_first_turn_and_a_page_past_the_end_is_the_last(store: Store, tmp_path) -> None:
    seeded = await seed_campaign(store, turns=120)
    token = await issue(store, "campaign", seeded.campaign_id, seeded.guild_id)
    async with journal(store, tmp_path) as (base, _):
        _, _, last = await get(base, f"/j/{token}?page=5")
        _, _, beyond = await get(base, f"/j/{token}?page=999")
        _, _, junk = await get(base, f"/j/{token}?page=abc")
    assert "Turn 1: I search the next hall." in last and "page 5 of 5" in last and 'rel="next"' not in last
    assert beyond == last
    assert "page 1 of 5" in junk


async def test_unknown_revoked_and_wrong_kind_tokens_are_plain_404s_and_misses_are_limited(
        store: Store, tmp_path) -> None:
    seeded = await seed_campaign(store, turns=3)
    campaign_token = await issue(store, "campaign", seeded.campaign_id, seeded.guild_id)
    usage_token = await issue(store, "usage", None, seeded.guild_id)
    async with journal(store, tmp_path) as (base, _):
        assert (await get(base, f"/u/{campaign_token}"))[0] == 404  # a campaign link opens no usage page
        assert (await get(base, f"/j/{usage_token}"))[0] == 404
        assert await store.journal.revoke(campaign_id=seeded.campaign_id) == 1
        status, headers, body = await get(base, f"/j/{campaign_token}")
        assert (status, body) == (404, "Not found.") and headers["X-Content-Type-Options"] == "nosniff"
        for _ in range(MISSES_PER_MINUTE - 3):
            assert (await get(base, "/j/" + "x" * 32))[0] == 404
        status, headers, _ = await get(base, "/j/" + "y" * 32)
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 61
        assert (await get(base, f"/u/{usage_token}"))[0] == 429  # even a good link waits out the address's minute
    row = await store.db.fetchone("SELECT token_hash FROM journal_links WHERE kind = 'usage'")
    assert row is not None and row[0] == token_hash(usage_token) and usage_token not in str(tuple(row))


async def test_the_usage_page_draws_one_bar_a_day_for_its_server_only(store: Store, tmp_path) -> None:
    seeded = await seed_campaign(store, turns=2, usage_days=DAYS)
    other = await seed_campaign(store, turns=2, guild_id=4_000_000_000_000_999, channel_id=91, usage_days=DAYS[:1])
    token = await issue(store, "usage", None, seeded.guild_id)
    async with journal(store, tmp_path) as (base, _):
        status, _, html = await get(base, f"/u/{token}")
    assert status == 200 and other.guild_id != seeded.guild_id
    tokens_chart = html.split('id="tokens"')[1].split("</svg>")[0]
    bars = re.findall(r'<rect class="bar"[^>]*height="([0-9.]+)"', tokens_chart)
    assert len(bars) == 30  # one bar per day of the last 30
    titles = re.findall(r"<title>([0-9-]+): ([0-9,]+) tokens</title>", tokens_chart)
    assert {day: n for day, n in titles if n != "0"} == {DAYS[0]: "1,000", DAYS[1]: "2,000", DAYS[2]: "3,000"}
    assert titles[-1][0] == TODAY.isoformat() and len({day for day, _ in titles}) == 30
    assert "gpt-4o-mini" in html and "turn" in html


async def test_links_are_issued_only_when_the_journal_is_on_and_revoked_by_a_manager(store: Store, tmp_path) -> None:
    from bot.errors import UserInputError
    from bot.game.errors import NotAllowed

    seeded = await seed_campaign(store, turns=1)
    settings = load_settings(None, data_dir=str(tmp_path))
    off = JournalLinks(store, settings, None)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="JOURNAL_BASE_URL and JOURNAL_LISTEN"):
        await off.usage_link(seeded.guild_id, Actor(1, "gm", is_admin=True))
    async with journal(store, tmp_path) as (base, links):
        with pytest.raises(NotAllowed):
            await links.usage_link(seeded.guild_id, Actor(5, "player"))
        url = await links.usage_link(seeded.guild_id, Actor(1, "gm", is_admin=True))
        assert re.fullmatch(r"https://dm\.example\.com/u/[A-Za-z0-9_-]{32}", url)
        assert (await get(base, url.removeprefix("https://dm.example.com")))[0] == 200
        again = await links.usage_link(seeded.guild_id, Actor(1, "gm", is_admin=True), revoke_old=True)
        assert (await get(base, url.removeprefix("https://dm.example.com")))[0] == 404
        assert (await get(base, again.removeprefix("https://dm.example.com")))[0] == 200
    assert ChannelRef(seeded.guild_id, 90).channel_id == 90


async def test_misses_behind_a_proxy_are_counted_per_forwarded_address(store: Store, tmp_path) -> None:
    async with journal(store, tmp_path) as (base, _), aiohttp.ClientSession() as http:
        for _ in range(MISSES_PER_MINUTE):
            async with http.get(base + "/j/" + "z" * 32, headers={"X-Forwarded-For": "203.0.113.7"}) as r:
                assert r.status == 404
        async with http.get(base + "/j/" + "z" * 32, headers={"X-Forwarded-For": "203.0.113.7"}) as r:
            assert r.status == 429
        async with http.get(base + "/j/" + "z" * 32, headers={"X-Forwarded-For": "198.51.100.9"}) as r:
            assert r.status == 404  # another player behind the same proxy is not punished


async def test_the_bot_serves_its_journal_and_hands_out_links_through_discord(tmp_path) -> None:
    from tests.integration.test_discord_cogs import start_with_party, table, text_of

    async with table(tmp_path, journal_base_url="https://dm.example.com", journal_listen="127.0.0.1:0") as t:
        await start_with_party(t)
        answer = text_of(await t.command("campaign", t.fake.players[0], subcommand="link", group="journal"))
        url = re.search(r"https://dm\.example\.com(/j/[A-Za-z0-9_-]{32})", answer)
        assert url is not None, answer
        assert t.bot.journal is not None
        status, _, html = await get(f"http://127.0.0.1:{t.bot.journal.port}", url.group(1))
        assert status == 200 and "<h1>Test Keep</h1>" in html
        refused = text_of(await t.command("campaign", t.fake.players[1], subcommand="revoke", group="journal"))
        assert "Only the campaign's creator or a server admin" in refused
        revoked = text_of(await t.command("campaign", t.fake.owner, subcommand="revoke", group="journal"))
        assert "1 journal link revoked" in revoked
        assert (await get(f"http://127.0.0.1:{t.bot.journal.port}", url.group(1)))[0] == 404


async def test_check_says_whether_the_journal_answers(tmp_path, closed_port_url: str, store: Store) -> None:
    from tests.integration.test_db_copy import run_cli

    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": closed_port_url, "DATA_DIR": str(tmp_path / "d"),
           "JOURNAL_LISTEN": "127.0.0.1:8080"}
    async with journal(store, tmp_path) as (base, _):
        _, out = await run_cli("check", env={**env, "JOURNAL_BASE_URL": base})
        assert f"[ ok ] journal: reachable at {base}" in out, out
    port = closed_port_url.split(":")[2].split("/")[0]
    _, out = await run_cli("check", env={**env, "JOURNAL_BASE_URL": f"http://127.0.0.1:{port}"})
    assert f"[warn] journal: http://127.0.0.1:{port}/healthz is not reachable" in out, out
