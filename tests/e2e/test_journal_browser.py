"""The journal in a real browser: headless Chromium (Debian's ``chromium`` package, which the test
command installs) driven by Playwright, against the journal's server on 127.0.0.1 over a 2,000-turn
campaign. Each page's screenshot is saved in ``test-artifacts/journal/``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from playwright.async_api import async_playwright

from bot.config import load_settings
from bot.journal.server import JournalServer, token_hash
from bot.store import Database, Store
from tests.support.journal_data import HOSTILE_LINE, HOSTILE_NAME, seed_campaign

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "journal"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


async def test_the_journal_reads_well_in_a_browser_and_runs_nothing_it_shows(tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with Database.open(tmp_path / "db.sqlite3", migrate=True) as db:
        store = Store(db)
        import datetime as dt

        today = dt.datetime.now(dt.UTC).date()
        days = tuple((today - dt.timedelta(days=n)).isoformat() for n in (6, 3, 1, 0))
        seeded = await seed_campaign(store, turns=2000, usage_days=days)
        campaign_token, usage_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        await store.journal.issue(token_hash=token_hash(campaign_token), kind="campaign",
                                  campaign_id=seeded.campaign_id, guild_id=seeded.guild_id, created_by=1)
        await store.journal.issue(token_hash=token_hash(usage_token), kind="usage", campaign_id=None,
                                  guild_id=seeded.guild_id, created_by=1)
        server = JournalServer(store, load_settings(None, data_dir=str(tmp_path)))
        base = f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}"
        dialogs: list[str] = []
        problems: list[str] = []
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
                page.on("dialog", lambda d: dialogs.append(d.message))
                page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: problems.append(str(e)))

                response = await page.goto(f"{base}/j/{campaign_token}")
                assert response is not None and response.status == 200
                party = await page.locator("#party").inner_text()
                assert "Aria" in party and HOSTILE_NAME in party  # the name as text, not markup
                transcript = await page.locator("#transcript").inner_text()
                assert "The DM answers turn 2000." in transcript and HOSTILE_LINE in transcript
                assert await page.locator("#party script, #transcript img, #transcript b").count() == 0
                await page.screenshot(path=str(ARTIFACTS / "campaign.png"), full_page=True)

                await page.locator('nav.pager a[rel="last"]').first.click()
                await page.wait_for_url(f"**/j/{campaign_token}?page=80", timeout=10_000)
                oldest = await page.locator("#transcript").inner_text()
                assert "Turn 1: I search the next hall." in oldest and "page 80 of 80" in oldest
                await page.screenshot(path=str(ARTIFACTS / "oldest.png"), full_page=True)
                await page.locator('nav.pager a[rel="prev"]').first.click()
                await page.wait_for_url(f"**/j/{campaign_token}?page=79", timeout=10_000)

                response = await page.goto(f"{base}/u/{usage_token}")
                assert response is not None and response.status == 200
                assert await page.locator("#tokens svg rect.bar").count() == 30
                assert await page.locator("#dollars svg rect.bar").count() == 30
                drawn = await page.locator("#tokens svg rect.bar").evaluate_all(
                    "bars => bars.filter(b => b.getBBox().height > 0).length")
                assert drawn == len(days)
                await page.screenshot(path=str(ARTIFACTS / "usage.png"), full_page=True)

                await store.journal.revoke(campaign_id=seeded.campaign_id)
                response = await page.goto(f"{base}/j/{campaign_token}")
                assert response is not None and response.status == 404
                assert (await page.locator("body").inner_text()).strip() == "Not found."
                await page.screenshot(path=str(ARTIFACTS / "revoked.png"))
                await browser.close()
        finally:
            await server.close()
    assert dialogs == [], dialogs  # nothing the page shows ever ran
    assert [p for p in problems if "404" not in p] == [], problems
