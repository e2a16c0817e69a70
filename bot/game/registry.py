"""The session registry: which channels have a loaded session; loading, eviction, closing, draining.

A channel's session is loaded from the store on its first use (campaign, party, summary, the
unsummarised story, the pending actions: one read each) and kept while the table plays. A session
idle for ``session_idle_seconds`` with nothing pending or running is unloaded and reloads on its
next use. "This channel has no campaign" is remembered for a short while so chatter in other
channels costs no query. ``start`` loads the campaigns that a previous process left with unanswered
actions, so they are answered at once.

Several processes may share one database (``bot.store.leases``): a session loads only while this
process holds its campaign's lease (renewed every ``LEASE_RENEW_SECONDS``, given back when the
session unloads or the process closes), so two processes never answer one channel; a message for a
campaign whose lease another live process holds is left to that process (it receives it too), and
the lease is looked at again with the next message.
Only campaigns of servers this process's shards receive are recovered (``Settings.owns_guild``),
and every ``LEASE_RENEW_SECONDS`` campaigns with pending actions and no live lease (their process
was killed) are taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from bot.config import Settings
from bot.game.combat import Encounter
from bot.game.configs import ServerConfigs
from bot.game.errors import NoCampaign
from bot.game.session import GameSession, LiveSession, TurnTimings
from bot.game.turns import Clock
from bot.store import Store

log = logging.getLogger(__name__)

EVICT_EVERY_SECONDS = 60.0
LEASE_SECONDS = 15.0  # how long a campaign's lease lasts unless renewed (a killed process's expires then)
LEASE_RENEW_SECONDS = 5.0  # how often the leases of loaded sessions are renewed and orphans taken over
NO_CAMPAIGN_TTL_SECONDS = 30.0  # how long "this channel has no campaign" is remembered
NO_CAMPAIGN_CACHE_MAX = 10_000
DRAIN_POLL_SECONDS = 0.02

def holder_is_dead(other: str, me: str) -> bool:
    """Whether the lease holder ``other`` (``host:pid:random``) is certainly not running: it is on this
    host and its pid is gone, or it has this process's own pid (an earlier run of a container whose
    bot is always pid 1). A holder on another host is never known dead (its lease expires instead)."""
    try:
        host, pid_text, _ = other.rsplit(":", 2)
        my_host, my_pid, _ = me.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host:
        return False
    if str(pid) == my_pid:
        return other != me
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


Assemble = Callable[[GameSession], LiveSession]
"""Builds a loaded session's worker, memory keeper and sheet journal around its state."""
Prepare = Callable[[GameSession], Awaitable[None]]
"""Completes a loaded session's state from the store (its pace) before it is assembled."""


class SessionRegistry:
    """The loaded sessions of this process, by channel id.

    Args:
        store: where sessions are loaded from.
        settings: ``session_idle_seconds`` and the turn window timings.
        configs: the servers' effective options.
        clock: time source for idleness.
        assemble: builds a ``LiveSession`` around freshly loaded state.
        prepare: completes freshly loaded state from the store before it is assembled (the table's
            pace: ``PaceService.load``); None: nothing more.
    """

    def __init__(self, *, store: Store, settings: Settings, configs: ServerConfigs, clock: Clock,
                 assemble: Assemble, prepare: Prepare | None = None) -> None:
        self.prepare = prepare
        self.store = store
        self.settings = settings
        self.configs = configs
        self.clock = clock
        self.assemble = assemble
        self.sessions: dict[int, LiveSession] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._no_campaign: dict[int, float] = {}
        self._evictor: asyncio.Task[None] | None = None
        self._leaser: asyncio.Task[None] | None = None
        self.closing = False
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this process, for leases

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

    def _not_here(self, channel_id: int) -> None:
        if len(self._no_campaign) >= NO_CAMPAIGN_CACHE_MAX:
            self._no_campaign.clear()
        self._no_campaign[channel_id] = time.monotonic() + NO_CAMPAIGN_TTL_SECONDS

    async def _load(self, channel_id: int) -> LiveSession | None:
        campaign = await self.store.campaigns.live_in_channel(channel_id)
        if campaign is None:
            self._not_here(channel_id)
            return None
        if not await self._lease(campaign.id):  # not cached: the moment it is free, this process answers
            log.info("campaign %s is answered by another process (it holds the lease)", campaign.id)
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
        if self.prepare is not None:
            await self.prepare(state)
        live = self.assemble(state)
        if self.closing:  # close() began while this loaded
            await self._release(campaign.id)
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
        await self._release(live.state.campaign.id)

    async def _lease(self, campaign_id: int) -> bool:
        """Take the campaign's lease; a lease of a dead process on this machine (a killed bot
        restarted at once) is taken over without waiting for it to expire."""
        if await self.store.leases.acquire(campaign_id, self.holder, LEASE_SECONDS):
            return True
        other = await self.store.leases.holder(campaign_id)
        if other is None or not holder_is_dead(other, self.holder):
            return False
        log.info("campaign %s: taking over the lease of %s, which is no longer running", campaign_id, other)
        return await self.store.leases.take_over(campaign_id, other, self.holder, LEASE_SECONDS)

    async def _release(self, campaign_id: int) -> None:
        try:
            await self.store.leases.release(campaign_id, self.holder)
        except Exception:  # it expires on its own
            log.warning("could not give back the lease of campaign %s", campaign_id, exc_info=True)

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the sessions with actions left unanswered by a previous process (of this process's
        servers, whose lease is free) and start eviction and lease renewal."""
        await self.adopt()
        if self._evictor is None:
            self._evictor = asyncio.create_task(self._evict_loop(), name="session-evictor")
        if self._leaser is None:
            self._leaser = asyncio.create_task(self._lease_loop(), name="session-leases")

    async def adopt(self) -> int:
        """Load the campaigns of this process's servers that have unanswered actions and no session
        here (left by a previous or a killed process; loading takes the lease, or finds it held by a
        live process). Returns how many were loaded."""
        loaded = 0
        for campaign in await self.store.campaigns.with_pending_actions():
            if campaign.channel_id in self.sessions or not self.settings.owns_guild(campaign.guild_id):
                continue
            self._no_campaign.pop(campaign.channel_id, None)
            live = await self.get(campaign.channel_id)
            if live is not None:
                loaded += 1
                log.info("campaign %s: answering %d actions left pending", campaign.id, len(live.state.pending))
        return loaded

    async def renew(self) -> int:
        """Renew the lease of every loaded session; a session whose lease another process took (this
        one stalled past ``LEASE_SECONDS``) is unloaded. Returns how many were unloaded."""
        lost = []
        for live in list(self.sessions.values()):
            if not await self.store.leases.acquire(live.state.campaign.id, self.holder, LEASE_SECONDS):
                lost.append(live)
        for live in lost:
            log.warning("campaign %s: another process took its lease; unloading it here", live.state.campaign.id)
            if self.sessions.get(live.state.channel_id) is live:
                del self.sessions[live.state.channel_id]
            await live.close()
        return len(lost)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await self.renew()
                await self.adopt()
            except Exception:
                log.exception("renewing campaign leases failed")

    async def close(self, grace_s: float) -> None:
        """Stop eviction and close every session; running turns get up to ``grace_s`` seconds. No
        session loads from now on."""
        self.closing = True
        for task in (self._evictor, self._leaser):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._evictor = self._leaser = None
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(live.close(grace_s) for live in sessions), return_exceptions=True)
        for live in sessions:  # the next process (a rolling deploy's new one) may take them at once
            await self._release(live.state.campaign.id)

    def idle(self) -> bool:
        """True when no session has actions to answer (failed ones aside; those waiting in an open
        round, which may take hours, too), a turn or a fold running."""
        now, wall = self.clock.now(), self.clock.wall()
        return all(live.quiet and (not live.state.has_work() or live.state.held_by_round(now, wall))
                   for live in self.sessions.values())

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
