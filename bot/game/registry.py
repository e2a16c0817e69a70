"""The session registry: which channels have a loaded session; loading, eviction, closing, draining.

A channel's session is loaded from the store on its first use (campaign, party, summary, the
unsummarised story, the pending actions: one read each) and kept while the table plays. A session
idle for ``session_idle_seconds`` with nothing pending or running is unloaded and reloads on its
next use. "This channel has no campaign" is remembered for a short while so chatter in other
channels costs no query. ``start`` loads the campaigns that a previous process left with unanswered
actions, so they are answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.config import Settings
from bot.game.combat import Encounter
from bot.game.configs import ServerConfigs
from bot.game.errors import NoCampaign
from bot.game.session import GameSession, LiveSession, TurnTimings
from bot.game.turns import Clock
from bot.store import Store

log = logging.getLogger(__name__)

EVICT_EVERY_SECONDS = 60.0
NO_CAMPAIGN_TTL_SECONDS = 30.0  # how long "this channel has no campaign" is remembered
NO_CAMPAIGN_CACHE_MAX = 10_000
DRAIN_POLL_SECONDS = 0.02

Assemble = Callable[[GameSession], LiveSession]
"""Builds a loaded session's worker, memory keeper and sheet journal around its state."""


class SessionRegistry:
    """The loaded sessions of this process, by channel id.

    Args:
        store: where sessions are loaded from.
        settings: ``session_idle_seconds`` and the turn window timings.
        configs: the servers' effective options.
        clock: time source for idleness.
        assemble: builds a ``LiveSession`` around freshly loaded state.
    """

    def __init__(self, *, store: Store, settings: Settings, configs: ServerConfigs, clock: Clock,
                 assemble: Assemble) -> None:
        self.store = store
        self.settings = settings
        self.configs = configs
        self.clock = clock
        self.assemble = assemble
        self.sessions: dict[int, LiveSession] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._no_campaign: dict[int, float] = {}
        self._evictor: asyncio.Task[None] | None = None
        self.closing = False

    async def get(self, channel_id: int) -> LiveSession | None:
        """The channel's session, loading it on first use; None without a live campaign, and for
        every channel once ``close`` began (the intake then stores a message for the next start, so
        it is answered once, after the restart)."""
        if self.closing:
            return None
        live = self.sessions.get(channel_id)
        if live is not None:
            return live
        miss = self._no_campaign.get(channel_id)
        if miss is not None and time.monotonic() < miss:
            return None
        lock = self._loading.setdefault(channel_id, asyncio.Lock())
        try:
            async with lock:
                live = self.sessions.get(channel_id)
                if live is None and not self.closing:
                    live = await self._load(channel_id)
                return live
        finally:
            if not lock.locked():
                self._loading.pop(channel_id, None)

    async def require(self, channel_id: int) -> LiveSession:
        """The channel's session. Raises ``NoCampaign``."""
        live = await self.get(channel_id)
        if live is None:
            raise NoCampaign()
        return live

    def is_current(self, live: LiveSession) -> bool:
        """True while ``live`` is the channel's loaded session (not ended, evicted or closed)."""
        return self.sessions.get(live.state.channel_id) is live and not live.state.closed

    def campaign_started(self, channel_id: int) -> None:
        """Forget that the channel had no campaign."""
        self._no_campaign.pop(channel_id, None)

    async def _load(self, channel_id: int) -> LiveSession | None:
        campaign = await self.store.campaigns.live_in_channel(channel_id)
        if campaign is None:
            if len(self._no_campaign) >= NO_CAMPAIGN_CACHE_MAX:
                self._no_campaign.clear()
            self._no_campaign[channel_id] = time.monotonic() + NO_CAMPAIGN_TTL_SECONDS
            return None
        party = await self.store.characters.party(campaign.id)
        summary = await self.store.summaries.get(campaign.id)
        loaded = await self.store.story.context_window(campaign.id,
                                                       after_id=summary.through_message_id if summary else 0)
        history = sorted((m for m in loaded if m.state == "answered"), key=lambda m: (m.turn, m.id))
        pending = await self.store.story.pending(campaign.id)
        lore = await self.store.lore.live(campaign.id)
        config = await self.configs.get(campaign.guild_id)
        s = self.settings
        state = GameSession(campaign, config, party, summary, history, pending,
                            timings=TurnTimings(s.turn_extend_seconds, s.turn_max_window_seconds),
                            now=self.clock.now(), lore=lore)
        state.safety = await self.store.safety.get(campaign.id)
        encounter = await self.store.encounters.get(campaign.id)
        if encounter is not None:
            state.encounter = Encounter.from_dict(encounter)
        live = self.assemble(state)
        if self.closing:  # close() began while this loaded
            return None
        self.sessions[channel_id] = live
        if pending:
            live.worker.kick()
        return live

    async def drop(self, live: LiveSession) -> None:
        """Unload ``live`` (its campaign ended): stop its worker and any fold."""
        if self.sessions.get(live.state.channel_id) is live:
            del self.sessions[live.state.channel_id]
        await live.close()

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the sessions with actions left unanswered by a previous process and start eviction."""
        for campaign in await self.store.campaigns.with_pending_actions():
            live = await self.get(campaign.channel_id)
            if live is not None:
                log.info("campaign %s: answering %d actions left pending by the last run", campaign.id,
                         len(live.state.pending))
        if self._evictor is None:
            self._evictor = asyncio.create_task(self._evict_loop(), name="session-evictor")

    async def close(self, grace_s: float) -> None:
        """Stop eviction and close every session; running turns get up to ``grace_s`` seconds. No
        session loads from now on."""
        self.closing = True
        if self._evictor is not None:
            self._evictor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor
            self._evictor = None
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(live.close(grace_s) for live in sessions), return_exceptions=True)

    def idle(self) -> bool:
        """True when no session has actions to answer (failed ones aside), a turn or a fold running."""
        return all(not live.state.has_work() and live.quiet for live in self.sessions.values())

    async def drain(self, timeout: float) -> bool:
        """Wait (real time, at most ``timeout`` seconds) until ``idle``. Returns False on timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if self.idle():
                return True
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        return False

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(EVICT_EVERY_SECONDS)
            try:
                await self.evict_idle()
            except Exception:
                log.exception("evicting idle sessions failed")

    async def evict_idle(self) -> int:
        """Unload sessions idle for ``session_idle_seconds`` with nothing pending or running.
        Returns how many were unloaded; they reload from the store on their next use."""
        now = self.clock.now()
        idle = [live for live in self.sessions.values()
                if not live.state.pending and live.quiet
                and now - live.state.last_active >= self.settings.session_idle_seconds]
        for live in idle:
            await self.drop(live)
        if idle:
            log.debug("evicted %d idle sessions", len(idle))
        return len(idle)
