"""The campaign journal: read-only web pages served from the bot process (aiohttp, the server that
ships with discord.py), rendered from Jinja2 templates with autoescaping on.

Pages (``TOKEN`` is a link's random 192-bit token; only its SHA-256 is stored):

    GET /j/TOKEN[?page=N]   a campaign: title, premise, party sheets, the running encounter, open
                            quests and the world (non-secret lore), the chapters, and the transcript,
                            ``PAGE_SIZE`` messages a page, page 1 the newest, dice inline
    GET /u/TOKEN            a server's model usage (admins): tokens and US dollars per day as inline
                            SVG bar charts drawn here, and by model and by purpose
    GET /static/journal.css the stylesheet;  GET /healthz  "ok" (for ``check`` and load balancers)

Safety: a page shows only what its link was issued for (one campaign, or one server's usage): no
secret lore, no player or user ids, no setting. Every text is escaped by the templates. Responses
carry a strict Content-Security-Policy (no scripts at all), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` (tokens are in URLs), ``X-Frame-Options: DENY`` and ``Cache-Control:
no-store``. Tokens are looked up by hash and compared in constant time; an unknown or revoked token
gets a plain 404, and an address that misses ``MISSES_PER_MINUTE`` times in a minute gets 429 with
``Retry-After`` until its minute passes. Reads are bounded (one page of transcript, at most
``CHAPTERS_SHOWN`` chapters, ``USAGE_DAYS`` days), on the bot's own event loop and database, without
slowing its turns: on SQLite the pages read through a second, read-only connection (WAL lets it read
while the bot writes, so a page never waits for the bot's connection nor holds it), and templates
render in a worker thread, so the event loop keeps serving turns while a page is built; a page
built in the last ``PAGE_CACHE_SECONDS`` is served again as it was (a table that keeps reloading
costs one build every ten seconds, and the journal lags the channel by at most that).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader

from bot.config import Settings
from bot.game.combat import Encounter
from bot.game.tracker import render
from bot.models import RollRecord
from bot.store import Store, default_guild_config
from bot.store.journal import USAGE_DAYS, JournalLink

log = logging.getLogger(__name__)

MISSES_PER_MINUTE = 20
PAGE_CACHE_SECONDS = 10.0
PAGE_CACHE_MAX = 256
CHAPTERS_SHOWN = 60  # the newest chapters on the campaign page
CHART_WIDTH, CHART_HEIGHT = 600, 160
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
LORE_HEADINGS = {"npc": "People", "place": "Places", "faction": "Factions", "item": "Things", "fact": "Facts"}


def token_hash(token: str) -> str:
    """The stored form of a link token: SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a chart: where it is drawn (SVG units) and what its tooltip says."""

    x: float
    y: float
    w: float
    h: float
    day: str
    label: str


def bars(values: list[tuple[str, float]], fmt: Callable[[float], str]) -> tuple[list[Bar], float]:
    """One bar per ``(day, value)`` scaled to the chart's height; returns them and the peak value."""
    peak = max((v for _, v in values), default=0.0)
    width = CHART_WIDTH / max(1, len(values))
    out = []
    for i, (day, value) in enumerate(values):
        h = 0.0 if peak <= 0 else round(CHART_HEIGHT * value / peak, 2)
        out.append(Bar(round(i * width + 1, 2), round(CHART_HEIGHT - h, 2), round(max(1.0, width - 2), 2), h,
                       day, fmt(value)))
    return out, peak


class MissLimiter:
    """Unknown-token requests per client address in the last 60 seconds."""

    def __init__(self, per_minute: int = MISSES_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._misses: dict[str, deque[float]] = defaultdict(deque)

    def blocked_for(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may)."""
        misses = self._misses.get(address)
        if not misses:
            return 0.0
        now = self.clock()
        while misses and now - misses[0] >= 60.0:
            misses.popleft()
        if not misses:
            del self._misses[address]
            return 0.0
        return 60.0 - (now - misses[0]) if len(misses) >= self.per_minute else 0.0

    def miss(self, address: str) -> None:
        """Count one miss (the table of addresses is bounded: the oldest are forgotten)."""
        if len(self._misses) > 50_000:
            self._misses.clear()
        self._misses[address].append(self.clock())


class JournalServer:
    """The journal's web application over the bot's store.

    Args:
        store: the bot's database.
        settings: ``journal_listen`` (host:port) and the defaults for servers' options.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.env = Environment(loader=PackageLoader("bot.journal", "templates"), autoescape=True,
                               trim_blocks=True, lstrip_blocks=True)
        self.misses = MissLimiter()
        self.app = web.Application(middlewares=[self._headers])
        self.app.router.add_get("/healthz", self._health)
        self.app.router.add_get("/static/journal.css", self._css)
        self.app.router.add_get("/j/{token}", self._campaign)
        self.app.router.add_get("/u/{token}", self._usage)
        self._runner: web.AppRunner | None = None
        self._reader: Any = None  # SQLite: the read-only connection the pages read through
        self._built: dict[tuple[str, int | None, int], tuple[float, str]] = {}  # (page, id, n) -> (until, html)
        self.reads = store
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen on ``host:port`` (default ``JOURNAL_LISTEN``; port 0 picks a free one). Returns the port.

        Raises:
            OSError: the address is taken or not this machine's.
        """
        if host is None or port is None:
            listen_host, _, listen_port = (self.settings.journal_listen or "127.0.0.1:0").rpartition(":")
            host, port = listen_host.strip("[]"), int(listen_port)
        from bot.store.sqlite import SqliteDatabase

        db = self.store.db
        if isinstance(db, SqliteDatabase) and str(db.path) != ":memory:":
            self._reader = await SqliteDatabase.connect_path(db.path, read_only=True)
            self.reads = Store(self._reader)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info("journal listening on %s:%s", host, self.port)
        return self.port

    async def close(self) -> None:
        """Stop listening (requests in flight finish)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
            self.reads = self.store

    # --- plumbing --------------------------------------------------------------------------------
    @web.middleware
    async def _headers(self, request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a plain-text answer with the exception's status (and Retry-After)
            response = web.Response(status=exc.status, text=exc.text or exc.reason, content_type="text/plain")
            if "Retry-After" in exc.headers:
                response.headers["Retry-After"] = exc.headers["Retry-After"]
        except Exception:
            log.exception("journal page %s failed", request.path.split("/")[1] if "/" in request.path else "")
            response = web.Response(status=500, text="Something went wrong.", content_type="text/plain")
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _page(self, template: str, **context: Any) -> web.Response:
        html = await asyncio.to_thread(self.env.get_template(template).render, **context)
        return self._html(html)

    @staticmethod
    def _html(html: str) -> web.Response:
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    def _cached(self, key: tuple[str, int | None, int]) -> web.Response | None:
        hit = self._built.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return self._html(hit[1])

    def _keep(self, key: tuple[str, int | None, int], response: web.Response) -> web.Response:
        if len(self._built) >= PAGE_CACHE_MAX:
            self._built.clear()
        self._built[key] = (time.monotonic() + PAGE_CACHE_SECONDS, response.text or "")
        return response

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def _css(self, request: web.Request) -> web.Response:
        from importlib import resources

        css = resources.files("bot.journal").joinpath("static/journal.css").read_text(encoding="utf-8")
        return web.Response(text=css, content_type="text/css", charset="utf-8")

    @staticmethod
    def client_address(request: web.Request) -> str:
        """Who is asking: the connection's address, or, when it comes from this machine (the reverse
        proxy the README sets up), the last address of its ``X-Forwarded-For``."""
        remote = request.remote or "?"
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded and remote in ("127.0.0.1", "::1"):
            return forwarded.split(",")[-1].strip()[:64] or remote
        return remote

    async def _link(self, request: web.Request, kind: str) -> JournalLink:
        """The live link the request's token names, or a plain 404 (429 for an address that keeps missing)."""
        address = self.client_address(request)
        wait = self.misses.blocked_for(address)
        if wait > 0:
            raise web.HTTPTooManyRequests(text="Too many requests.", headers={"Retry-After": str(int(wait) + 1)})
        token = request.match_info["token"]
        computed = token_hash(token) if 16 <= len(token) <= 128 else ""
        found = await self.reads.journal.find(computed) if computed else None
        if found is None or not hmac.compare_digest(found[0], computed) or found[1].kind != kind:
            self.misses.miss(address)
            raise web.HTTPNotFound(text="Not found.")
        return found[1]

    # --- pages -----------------------------------------------------------------------------------
    async def _campaign(self, request: web.Request) -> web.Response:
        link = await self._link(request, "campaign")
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page = 1
        key = ("campaign", link.campaign_id, page)
        cached = self._cached(key)
        if cached is not None:
            return cached
        campaign = await self.reads.campaigns.get(link.campaign_id or 0)
        if campaign is None:
            raise web.HTTPNotFound(text="Not found.")
        party = await self.reads.characters.party(campaign.id)
        config = await self.reads.guild_config.effective(campaign.guild_id or 0, default_guild_config(self.settings))
        state = await self.reads.encounters.get(campaign.id)
        tracker = render(Encounter.from_dict(state), show_monster_hp=config.show_monster_hp) if state else None
        lore = [e for e in await self.reads.lore.live(campaign.id) if not e.secret]
        quests = [e for e in lore if e.kind == "quest" and e.status == "open"]
        grouped = [(LORE_HEADINGS[kind], [e for e in lore if e.kind == kind]) for kind in LORE_HEADINGS]
        chapters = (await self.reads.chapters.latest(campaign.id, CHAPTERS_SHOWN))[::-1]
        messages, pages = await self.reads.journal.transcript_page(campaign.id, page)
        rolls: dict[int, list[RollRecord]] = defaultdict(list)
        turns = [m.turn for m in messages]
        if turns:
            for roll in await self.reads.journal.rolls_between(campaign.id, min(turns), max(turns)):
                rolls[roll.turn or 0].append(roll)
        return self._keep(key, await self._page(
            "campaign.html", campaign=campaign, party=party, tracker=tracker, quests=quests,
            lore=[(k, es) for k, es in grouped if es], chapters=chapters, messages=messages, rolls=rolls,
            page=min(page, pages), pages=pages))

    async def _usage(self, request: web.Request) -> web.Response:
        link = await self._link(request, "usage")
        key = ("usage", link.guild_id, 0)
        cached = self._cached(key)
        if cached is not None:
            return cached
        days = await self.reads.journal.usage_days(link.guild_id, days=USAGE_DAYS)
        token_bars, token_peak = bars([(d.day, float(d.tokens)) for d in days], lambda v: f"{int(v):,} tokens")
        cost_bars, cost_peak = bars([(d.day, d.cost_usd or 0.0) for d in days], lambda v: f"${v:.4f}")
        frame: dict[str, Any] = {"width": CHART_WIDTH, "height": CHART_HEIGHT, "first": days[0].day,
                                 "last": days[-1].day}
        charts = [
            {**frame, "id": "tokens", "title": "Tokens per day", "bars": token_bars,
             "peak": f"{int(token_peak):,} tokens"},
            {**frame, "id": "dollars", "title": "US dollars per day", "bars": cost_bars, "peak": f"${cost_peak:.4f}"},
        ]
        by_model = await self.reads.journal.usage_groups(link.guild_id, "model")
        by_purpose = await self.reads.journal.usage_groups(link.guild_id, "purpose")
        tables = [{"title": "By model", "column": "Model", "rows": by_model},
                  {"title": "By purpose", "column": "Purpose", "rows": by_purpose}]
        return self._keep(key, await self._page("usage.html", days=days, charts=charts, tables=tables))
