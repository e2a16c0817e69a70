"""Game sessions: one per channel, loaded on demand, one worker each, evicted when idle.

``Game`` implements ``bot.game.api.GameAPI`` for both adapters. Each channel with a live campaign gets a
``GameSession`` holding its working memory (campaign, party, summary, the unsummarised story and the
pending actions) loaded ONCE from the database. All turns of a channel run in that session's single
worker task and under its lock, so two players never get overlapping DM replies; channels run
concurrently.

A turn's hot path: snapshot the pending actions, build the prompt from the cached stable prefix and
the sticky history window (stored token counts, no recounting), call the model (with tool rounds),
commit the turn in one transaction, deliver, and maybe schedule a memory fold in the background.

Who may act: anyone in the channel. A player without a character is still stored and answered
(labelled with their display name) so a newcomer is not ignored; "every party member has acted"
(early close of the window) counts only players with characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bot.config import Settings
from bot.errors import BotError, UserInputError
from bot.game import context as ctxmod
from bot.game import memory
from bot.game.api import (Actor, ChannelRef, CharacterSheetInput, DMReply, IncomingMessage, Intake,
                          Narrator, UndoResult)
from bot.game.dice import make_roll
from bot.game.errors import (BudgetExhausted, CampaignNotActive, NoCampaign, NotAllowed, NothingToUndo,
                             NotInParty)
from bot.game.filters import classify
from bot.game.tools import TOOL_SCHEMAS, ToolContext, run_tool
from bot.game.turns import Clock, MonotonicClock, TurnCollector
from bot.llm.types import ChatResult
from bot.models import (Campaign, CampaignStatusReport, Character, GuildConfig, RollRecord, StoryMessage,
                        Summary, UsageReport)
from bot.store import Store, default_guild_config

log = logging.getLogger(__name__)

PLAYER_BURST = 3  # actions one player may send within PLAYER_COOLDOWN_SECONDS before being refused
EMPTY_REPLY = "*The DM pauses, looks around the table, and waits for what you do next.*"
FOLD_RETRY_TURNS = 3
EVICT_EVERY_SECONDS = 60.0

# Level-1 hit points (hit die maximum + 2 for a typical Constitution) and a typical armor class by
# class, from the D&D 5e System Reference Document 5.1 class tables (CC-BY-4.0).
CLASS_DEFAULTS: dict[str, tuple[int, int]] = {
    "barbarian": (14, 14), "fighter": (12, 16), "paladin": (12, 16), "ranger": (12, 14),
    "bard": (10, 13), "cleric": (10, 16), "druid": (10, 13), "monk": (10, 15), "rogue": (10, 14),
    "warlock": (10, 13), "artificer": (10, 15), "sorcerer": (8, 12), "wizard": (8, 12),
}


@dataclass(frozen=True, slots=True)
class TurnTiming:
    """Where one turn's time went, seconds (``time.perf_counter``): from the window closing to the
    reply being handed to the narrator, and how much of that was the model calls (``model_s``)."""

    channel_id: int
    turn: int
    closed_at: float
    delivered_at: float
    model_s: float
    prompt_messages: int

    @property
    def overhead_s(self) -> float:
        """Bot time of the turn: total minus the model's own time."""
        return self.delivered_at - self.closed_at - self.model_s


class ModelPort(Protocol):
    """What the game needs of the model client (``bot.llm.LLMClient`` satisfies it)."""

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   tools: list[dict[str, Any]] | None = None) -> ChatResult: ...


def _default_counter() -> Callable[[str, str], int]:
    from bot.llm import count_tokens

    return count_tokens


class GameSession:
    """The working memory and turn worker of one channel's campaign. Created by ``Game``."""

    def __init__(self, game: Game, campaign: Campaign, config: GuildConfig, party: list[Character],
                 summary: Summary | None, history: list[StoryMessage], pending: list[StoryMessage]) -> None:
        self.game = game
        self.campaign = campaign
        self.config = config
        self.party = party
        self.summary = summary
        self.history = history
        self.pending = pending
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        s = game.settings
        window = 0.0 if config.turn_mode == "mention" else config.turn_window_seconds
        self.collector = TurnCollector(window, s.turn_extend_seconds, s.turn_max_window_seconds)
        self.window = ctxmod.HistoryWindow()
        self.last_active = game.clock.now()
        self.recent_actions: dict[int, deque[float]] = {}
        self.busy = False
        self.recovering = bool(pending)
        self.closed = False
        self._prefix: list[dict[str, Any]] | None = None
        self._fold_task: asyncio.Task[None] | None = None
        self._fold_after_turn = 0
        self._model_s = 0.0
        self._worker = asyncio.create_task(self._run(), name=f"session-{campaign.channel_id}")
        if pending:
            for p in pending:
                self.collector.add(game.clock.now(), p.author_id or 0)
            self.wake.set()

    # --- state helpers ---------------------------------------------------------------------------
    @property
    def channel_id(self) -> int:
        return self.campaign.channel_id

    def character_of(self, player_id: int) -> Character | None:
        return next((c for c in self.party if c.player_id == player_id), None)

    def invalidate_prefix(self) -> None:
        """Forget the cached stable prefix (party, summary, options or campaign changed)."""
        self._prefix = None

    def set_config(self, config: GuildConfig) -> None:
        self.config = config
        self.collector.window = 0.0 if config.turn_mode == "mention" else config.turn_window_seconds
        self.invalidate_prefix()

    def prefix(self) -> list[dict[str, Any]]:
        """The stable part of the prompt, cached and byte-identical until invalidated."""
        if self._prefix is None:
            self._prefix = [
                {"role": "system", "content": ctxmod.system_prompt(self.campaign, self.config)},
                {"role": "system", "content": ctxmod.party_block(self.party)},
                {"role": "system", "content": ctxmod.summary_block(self.summary)},
            ]
        return self._prefix

    def build_messages(self, actions: Sequence[StoryMessage], history: Sequence[StoryMessage] | None = None
                       ) -> list[dict[str, Any]]:
        """Prompt for a turn answering ``actions`` (a new list; the cached prefix is not mutated)."""
        window = self.window.select(self.history if history is None else history,
                                    self.game.settings.history_token_budget)
        return [*self.prefix(), *(ctxmod.render(m) for m in window), ctxmod.render_actions(actions)]

    # --- the worker ------------------------------------------------------------------------------
    async def _run(self) -> None:
        clock = self.game.clock
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            if not self.pending or self.campaign.status != "active":
                continue
            if not self.recovering:
                party_ids = {c.player_id for c in self.party}
                while not self.collector.ready(clock.now(), party_ids):
                    deadline = self.collector.deadline if self.collector.deadline is not None else clock.now()
                    if await clock.wait(self.wake, deadline):
                        self.wake.clear()
            kind = "recovered" if self.recovering else "turn"
            self.recovering = False
            actions = list(self.pending)
            self.collector.reset()
            try:
                await self.play_turn(actions, kind=kind)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must survive anything; the actions stay pending
                log.exception("turn in channel %s failed", self.channel_id)
                await self.game.notice(self.channel_id, "Something went wrong on the DM's side of the "
                                       "screen. Your actions are saved; the DM will answer them with "
                                       "the next action.")
            if self.pending and any(p.id not in {a.id for a in actions} for p in self.pending):
                self.wake.set()  # actions that arrived during the turn: next turn

    async def play_turn(self, actions: list[StoryMessage], *, kind: str = "turn") -> bool:
        """Answer ``actions`` in one DM reply. Returns True when a reply was stored and delivered.

        Model errors become a notice to the table; the actions stay pending and are answered with
        the next turn (or after a restart).
        """
        game = self.game
        closed_at = time.perf_counter()
        async with self.lock:
            self.busy = True
            self._model_s = 0.0
            try:
                turn = self.campaign.turn + 1
                player_ids = [a.author_id for a in actions if a.author_id is not None]
                try:
                    await game.check_budget(self.campaign.guild_id, player_ids)
                    messages = self.build_messages(actions)
                    async with game.narrator.thinking(self.channel_id):
                        text, rolls = await self._converse(messages, turn, player_ids, purpose="turn")
                except BotError as exc:
                    log.warning("turn %s in channel %s not answered: %s (status %s, request %s)", turn,
                                self.channel_id, type(exc).__name__, getattr(exc, "status", None),
                                getattr(exc, "request_id", None))
                    await game.notice(self.channel_id, exc.player_message)
                    return False
                model = self.config.model
                notes = [(n, game.count(n, model)) for n in _roll_notes(rolls)]
                stored_notes, dm = await game.store.story.complete_turn(
                    campaign_id=self.campaign.id, turn=turn, action_ids=[a.id for a in actions],
                    dm_content=text, dm_token_count=game.count(text, model), rolls=rolls, notes=notes)
                answered_ids = {a.id for a in actions}
                self.pending = [p for p in self.pending if p.id not in answered_ids]
                self.history.extend(replace(a, state="answered", turn=turn) for a in actions)
                self.history.extend(stored_notes)
                self.history.append(dm)
                self.campaign = replace(self.campaign, turn=turn)
                self.last_active = game.clock.now()
                game.turn_timings.append(TurnTiming(self.channel_id, turn, closed_at, time.perf_counter(),
                                                    self._model_s, len(messages)))
                await game.narrator.deliver(DMReply(
                    channel_id=self.channel_id, text=text, turn=turn, rolls=tuple(rolls),
                    answered_message_ids=tuple(a.platform_message_id for a in actions
                                               if a.platform_message_id is not None),
                    kind=kind, campaign_id=self.campaign.id))  # type: ignore[arg-type]
            finally:
                self.busy = False
        self.maybe_fold()
        return True

    async def _converse(self, messages: list[dict[str, Any]], turn: int, player_ids: Sequence[int], *,
                        purpose: str) -> tuple[str, list[RollRecord]]:
        """Call the model with tools for at most ``max_tool_rounds`` rounds, then once without tools.
        Returns the narration and the rolls made. Raises ``LLMError``."""
        game = self.game
        tool_ctx = ToolContext(self.campaign.id, turn, list(self.party), update=self._update_character)
        rounds = game.settings.max_tool_rounds
        text = ""
        for round_no in range(rounds + 1):
            with_tools = round_no < rounds
            started = time.perf_counter()
            result = await game.llm.chat(messages, model=self.config.model,
                                         temperature=self.config.temperature,
                                         max_tokens=self.config.max_tokens,
                                         tools=TOOL_SCHEMAS if with_tools else None)
            self._model_s += time.perf_counter() - started
            await game.record_usage(self.campaign, player_ids, purpose, result)
            if result.tool_calls and with_tools:
                messages.append(result.assistant_message())
                for call in result.tool_calls:
                    output = await run_tool(tool_ctx, call.name, call.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
                continue
            text = (result.text or "").strip()
            break
        return text or EMPTY_REPLY, tool_ctx.rolls

    async def _update_character(self, character_id: int, **changes: Any) -> Character:
        updated = await self.game.store.characters.update(character_id, **changes)
        self.party = [updated if c.id == updated.id else c for c in self.party]
        self.invalidate_prefix()
        return updated

    # --- memory ----------------------------------------------------------------------------------
    def maybe_fold(self) -> None:
        """Schedule a background fold when the unsummarised story passed the trigger."""
        s = self.game.settings
        if self._fold_task is not None and not self._fold_task.done():
            return
        if self.campaign.turn < self._fold_after_turn:
            return
        plan = memory.plan_fold(self.history, trigger_tokens=s.summary_trigger_tokens,
                                keep_tokens=s.history_token_budget)
        if plan is not None:
            self._fold_task = asyncio.create_task(self.fold(plan), name=f"fold-{self.channel_id}")

    async def fold(self, plan: memory.FoldPlan) -> bool:
        """Fold ``plan`` into the running summary. On failure nothing changes; retried later."""
        game = self.game
        s = game.settings
        model = s.summary_model or self.config.model
        try:
            result = await game.llm.chat(memory.fold_messages(self.summary, plan, s.summary_token_cap),
                                         model=model, temperature=0.3, max_tokens=s.summary_token_cap)
            await game.record_usage(self.campaign, [], "summary", result)
            text = memory.cap_summary(result.text or "", s.summary_token_cap, lambda t: game.count(t, model))
            if not text:
                raise ValueError("empty summary")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("memory fold for campaign %s failed (%s); will retry in %d turns",
                        self.campaign.id, type(exc).__name__, FOLD_RETRY_TURNS)
            self._fold_after_turn = self.campaign.turn + FOLD_RETRY_TURNS
            return False
        async with self.lock:
            self.summary = await game.store.summaries.fold(
                self.campaign.id, content=text, token_count=game.count(text, model),
                through_message_id=plan.through_id)
            self.history = [m for m in self.history if m.id > plan.through_id]
            self.window.start_id = max(self.window.start_id, plan.through_id + 1)
            self.invalidate_prefix()
        return True

    async def close(self) -> None:
        """Stop the worker and any fold (a running turn is cancelled; its actions stay pending)."""
        self.closed = True
        tasks = [t for t in (self._worker, self._fold_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _roll_notes(rolls: Sequence[RollRecord]) -> list[str]:
    if not rolls:
        return []
    parts = []
    for r in rolls:
        who = f"{r.character_name} " if r.character_name else ""
        why = f" for {r.reason}" if r.reason else ""
        parts.append(f"{who}{r.expression}{why} = {r.total}")
    return ["Dice rolled: " + "; ".join(parts)]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _text_option(value: str, name: str, max_len: int) -> str:
    value = value.strip()
    if not value or len(value) > max_len or _CONTROL.search(value):
        raise UserInputError(f"`{name}` must be 1 to {max_len} characters of plain text.")
    return value


def _number(value: str, name: str, kind: type, lo: float, hi: float) -> Any:
    try:
        number = kind(value.strip())
    except ValueError:
        raise UserInputError(f"`{name}` must be a {'whole ' if kind is int else ''}number "
                             f"from {lo:g} to {hi:g}.") from None
    if not lo <= number <= hi:
        raise UserInputError(f"`{name}` must be from {lo:g} to {hi:g}.")
    return number


def parse_config_value(key: str, raw: str) -> Any:
    """Validate an admin's text for a server option and return the typed value (``None`` for
    ``default``, which resets it).

    Raises:
        UserInputError: unknown key or a bad value, with a sentence saying what is allowed.
    """
    if key not in GuildConfig.keys():
        raise UserInputError(f"Unknown setting `{key}`. Settings: {', '.join(GuildConfig.keys())}.")
    value = raw.strip()
    if value.lower() == "default":
        return None
    if key == "model":
        if re.search(r"\s", value):
            raise UserInputError("`model` is a model name without spaces, e.g. `gpt-4o-mini`.")
        return _text_option(value, key, 100)
    if key == "temperature":
        return _number(value, key, float, 0, 2)
    if key == "max_tokens":
        return _number(value, key, int, 50, 4000)
    if key == "turn_window_seconds":
        return _number(value, key, float, 0, 120)
    if key in ("guild_daily_token_budget", "player_daily_token_budget"):
        return _number(value, key, int, 0, 1_000_000_000)
    if key == "turn_mode":
        if value not in ("batch", "mention"):
            raise UserInputError("`turn_mode` is `batch` (group turns) or `mention` (answer mentions only).")
        return value
    if key == "content_rating":
        if value not in ("family", "teen", "mature"):
            raise UserInputError("`content_rating` is `family`, `teen` or `mature`.")
        return value
    if key == "dm_style":
        return _text_option(value, key, 300)
    if key == "allowed_channel_ids":
        if value.lower() in ("any", "all", "none", ""):
            return ()
        ids = []
        for part in re.split(r"[,\s]+", value):
            part = part.strip().removeprefix("<#").removesuffix(">")
            if not part:
                continue
            if not part.isdigit():
                raise UserInputError("`allowed_channel_ids` is a comma-separated list of channel ids "
                                     "(or #channel mentions), or `any`.")
            ids.append(int(part))
        return tuple(ids)
    if key == "ignored_prefixes":
        if value.lower() == "none":
            return ()
        prefixes = tuple(p.strip() for p in value.split(",") if p.strip())
        if any(len(p) > 5 or _CONTROL.search(p) for p in prefixes):
            raise UserInputError("Each ignored prefix is at most 5 characters, comma-separated, e.g. `!,?`.")
        return prefixes
    raise UserInputError(f"`{key}` cannot be set.")  # pragma: no cover - keys() covers all


class Game:
    """The game core (implements ``GameAPI``).

    Args:
        store: the database queries (``bot.store.Store``).
        llm: the model client (``ModelPort``; ``bot.llm.LLMClient`` in production).
        settings: process settings (defaults for server options, timings, budgets).
        narrator: the adapter that shows replies (Discord or terminal).
        clock: time source for turn windows and cooldowns (tests pass a fake).
        count_tokens: ``(text, model) -> tokens``; default ``bot.llm.count_tokens`` (tiktoken).
    """

    def __init__(self, *, store: Store, llm: ModelPort, settings: Settings, narrator: Narrator,
                 clock: Clock | None = None, count_tokens: Callable[[str, str], int] | None = None) -> None:
        self.store = store
        self.llm = llm
        self.settings = settings
        self.narrator = narrator
        self.clock: Clock = clock or MonotonicClock()
        self._count = count_tokens
        self.sessions: dict[int, GameSession] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._configs: dict[int, GuildConfig] = {}
        self._evictor: asyncio.Task[None] | None = None
        self.defaults = default_guild_config(settings)
        self.turn_timings: deque[TurnTiming] = deque(maxlen=10_000)

    def count(self, text: str, model: str) -> int:
        """Tokens of ``text`` for ``model`` (counted once per stored message)."""
        if self._count is None:
            self._count = _default_counter()
        return self._count(text, model)

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the sessions that have actions left unanswered by a previous process (they are
        answered at once, kind "recovered") and start idle eviction."""
        for campaign in await self.store.campaigns.with_pending_actions():
            await self._session(campaign.channel_id)
        self._evictor = asyncio.create_task(self._evict_loop(), name="session-evictor")

    async def close(self) -> None:
        """Cancel background work and close every session."""
        if self._evictor is not None:
            self._evictor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(EVICT_EVERY_SECONDS)
            await self.evict_idle()

    async def evict_idle(self) -> int:
        """Unload sessions idle for ``session_idle_seconds`` with nothing pending. Returns how many."""
        now = self.clock.now()
        idle = [s for s in self.sessions.values()
                if not s.busy and not s.pending and now - s.last_active >= self.settings.session_idle_seconds
                and (s._fold_task is None or s._fold_task.done())]
        for session in idle:
            self.sessions.pop(session.channel_id, None)
            await session.close()
        return len(idle)

    # --- lookups ---------------------------------------------------------------------------------
    async def config(self, guild_id: int | None) -> GuildConfig:
        """The effective options of a server (cached; ``None`` guild → process defaults)."""
        if guild_id is None:
            return self.defaults
        cached = self._configs.get(guild_id)
        if cached is None:
            cached = await self.store.guild_config.effective(guild_id, self.defaults)
            self._configs[guild_id] = cached
        return cached

    async def _session(self, channel_id: int) -> GameSession | None:
        session = self.sessions.get(channel_id)
        if session is not None:
            return session
        lock = self._loading.setdefault(channel_id, asyncio.Lock())
        async with lock:
            session = self.sessions.get(channel_id)
            if session is not None:
                return session
            campaign = await self.store.campaigns.live_in_channel(channel_id)
            if campaign is None:
                return None
            party = await self.store.characters.party(campaign.id)
            summary = await self.store.summaries.get(campaign.id)
            loaded = await self.store.story.context_window(
                campaign.id, after_id=summary.through_message_id if summary else 0)
            history = [m for m in loaded if m.state == "answered"]
            pending = [m for m in loaded if m.state == "pending"]
            config = await self.config(campaign.guild_id)
            session = GameSession(self, campaign, config, party, summary, history, pending)
            self.sessions[channel_id] = session
        self._loading.pop(channel_id, None)
        return session

    async def _require(self, where: ChannelRef) -> GameSession:
        session = await self._session(where.channel_id)
        if session is None:
            raise NoCampaign()
        return session

    @staticmethod
    def _require_manager(session: GameSession, actor: Actor, what: str) -> None:
        if not (actor.is_admin or actor.is_owner or actor.user_id == session.campaign.created_by):
            raise NotAllowed(player_message=f"Only the campaign's creator or a server admin can {what}.")

    # --- budgets and usage -----------------------------------------------------------------------
    async def check_budget(self, guild_id: int | None, player_ids: Sequence[int]) -> None:
        """Raise ``BudgetExhausted`` when the server's or a player's daily token budget is spent."""
        config = await self.config(guild_id)
        if config.guild_daily_token_budget:
            used = await self.store.usage.tokens_today(guild_id)
            if used >= config.guild_daily_token_budget:
                raise BudgetExhausted(player_message="This server's daily DM budget is spent. The story "
                                      "continues tomorrow (UTC), or an admin can raise it with /config set.")
        if config.player_daily_token_budget:
            for pid in set(player_ids):
                if await self.store.usage.tokens_today(guild_id, pid) >= config.player_daily_token_budget:
                    raise BudgetExhausted(player_message="A player's daily DM budget is spent; "
                                          "the DM will answer again tomorrow (UTC).")

    async def record_usage(self, campaign: Campaign | None, player_ids: Sequence[int], purpose: str,
                           result: ChatResult) -> None:
        """Store one model call's tokens and US dollars."""
        await self.store.usage.record(
            guild_id=campaign.guild_id if campaign else None, campaign_id=campaign.id if campaign else None,
            player_ids=player_ids, purpose=purpose, model=result.model or "unknown",
            prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens,
            cached_prompt_tokens=result.usage.cached_prompt_tokens, cost_usd=result.cost_usd)

    async def notice(self, channel_id: int, text: str) -> None:
        """Tell a channel something as the table's DM (errors, budgets)."""
        await self.narrator.deliver(DMReply(channel_id=channel_id, text=text, kind="notice"))

    # --- play ------------------------------------------------------------------------------------
    async def handle_message(self, msg: IncomingMessage) -> Intake:
        """Filter, store (commit) and queue a message; see ``GameAPI.handle_message``."""
        config = await self.config(msg.guild_id)
        verdict = classify(msg, config, max_input_chars=self.settings.max_input_chars)
        if verdict.status == "ignored":
            return Intake("ignored", verdict.reason)
        if verdict.status == "refused":
            return Intake("refused", verdict.reason, verdict.message)
        session = await self._session(msg.channel_id)
        if session is None:
            if msg.explicit_action:
                return Intake("refused", "no_campaign", NoCampaign().player_message)
            return Intake("ignored", "no_campaign")
        if session.campaign.status != "active":
            if msg.explicit_action:
                return Intake("refused", "paused", "The campaign is paused. An admin or its creator can "
                              "/campaign resume it.")
            return Intake("ignored", "paused")
        if len(session.pending) >= self.settings.channel_queue_limit:
            return Intake("refused", "queue_full", "The DM has too many actions waiting in this channel. "
                          "Give them a moment to catch up, then try again.")
        now = self.clock.now()
        cooldown = self.settings.player_cooldown_seconds
        recent = session.recent_actions.setdefault(msg.author_id, deque(maxlen=PLAYER_BURST))
        if cooldown and len(recent) == PLAYER_BURST and now - recent[0] < cooldown:
            wait = cooldown - (now - recent[0])
            return Intake("refused", "cooldown", f"Easy there! Wait {max(wait, 1):.0f} s before your next "
                          "action; that one was not sent to the DM.")
        try:
            await self.check_budget(msg.guild_id, [msg.author_id])
        except BudgetExhausted as exc:
            return Intake("refused", "budget", exc.player_message)
        character = session.character_of(msg.author_id)
        text = msg.content.strip()
        stored, new = await self.store.story.add_action(
            campaign_id=session.campaign.id, turn=session.campaign.turn + 1, author_id=msg.author_id,
            author_name=msg.author_name[:80], character_name=character.name if character else None,
            content=text, token_count=self.count(text, session.config.model),
            platform_message_id=msg.message_id, created_at=msg.created_at)
        if not new:
            return Intake("ignored", "duplicate", story_message_id=stored.id)
        recent.append(now)
        session.last_active = now
        session.pending.append(stored)
        session.collector.add(now, msg.author_id)
        session.wake.set()
        return Intake("queued", "action", story_message_id=stored.id)

    # --- campaign --------------------------------------------------------------------------------
    async def start_campaign(self, where: ChannelRef, actor: Actor, *, title: str, setting: str = "",
                             tone: str = "") -> Campaign:
        """Start a campaign in a channel. Raises ``UserInputError`` if one is live or the channel
        is not allowed."""
        config = await self.config(where.guild_id)
        if config.allowed_channel_ids and where.channel_id not in config.allowed_channel_ids:
            raise UserInputError("The DM doesn't play in this channel on this server "
                                 "(see /config show: allowed_channel_ids).")
        title = _text_option(title, "title", 100)
        campaign = await self.store.campaigns.create(
            guild_id=where.guild_id, channel_id=where.channel_id, title=title, setting=setting.strip()[:1500],
            tone=tone.strip()[:200], created_by=actor.user_id)
        await self._session(where.channel_id)
        return campaign

    async def _set_status(self, where: ChannelRef, actor: Actor, status: str, what: str) -> Campaign:
        session = await self._require(where)
        self._require_manager(session, actor, what)
        async with session.lock:
            await self.store.campaigns.set_status(session.campaign.id, status)
            session.campaign = replace(session.campaign, status=status)  # type: ignore[arg-type]
        if status == "ended":
            self.sessions.pop(where.channel_id, None)
            await session.close()
        elif status == "active" and session.pending:
            session.wake.set()
        return session.campaign

    async def end_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        return await self._set_status(where, actor, "ended", "end the campaign")

    async def pause_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        session = await self._require(where)
        if session.campaign.status == "paused":
            raise CampaignNotActive("The campaign is already paused.")
        return await self._set_status(where, actor, "paused", "pause the campaign")

    async def resume_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        session = await self._require(where)
        if session.campaign.status == "active":
            raise CampaignNotActive("The campaign is already running.")
        return await self._set_status(where, actor, "active", "resume the campaign")

    async def status(self, where: ChannelRef) -> CampaignStatusReport:
        session = await self._require(where)
        return CampaignStatusReport(
            campaign=session.campaign, party=tuple(session.party),
            story_messages=await self.store.story.count(session.campaign.id),
            pending_actions=len(session.pending),
            summary_tokens=session.summary.token_count if session.summary else 0, busy=session.busy)

    async def recap(self, where: ChannelRef) -> str:
        """The story so far: the running summary and the latest turns (no model call)."""
        session = await self._require(where)
        parts = [f"## {session.campaign.title} — the story so far"]
        if session.summary is not None:
            parts.append(session.summary.content)
        recent = [m for m in session.history if m.role in ("dm", "player")][-12:]
        if recent:
            parts.append("### Latest turns")
            for m in recent:
                who = "DM" if m.role == "dm" else (m.character_name or m.author_name)
                parts.append(f"**{who}:** {m.content}")
        if len(parts) == 1:
            parts.append("Nothing has happened yet. Type what your character does to begin!")
        return "\n\n".join(parts)

    async def export_markdown(self, where: ChannelRef) -> str:
        """The whole transcript as Markdown (title, party, every turn with rolls)."""
        session = await self._require(where)
        c = session.campaign
        lines = [f"# {c.title}", "", f"*Setting:* {c.setting or '—'}  ", f"*Tone:* {c.tone or '—'}", "",
                 "## Party", ""]
        lines += [f"- **{p.name}**, {p.ancestry} {p.char_class} (level {p.level}, HP {p.hp}/{p.max_hp}, "
                  f"AC {p.ac}) — played by {p.player_name}" for p in session.party] or ["- (nobody)"]
        lines += ["", "## Story", ""]
        turn = None
        for m in await self.store.story.transcript(c.id):
            if m.turn != turn and m.state != "pending":
                turn = m.turn
                lines += ["", f"### Turn {turn}", ""]
            if m.role == "dm":
                lines.append(f"**DM:** {m.content}")
            elif m.role == "system":
                lines.append(f"> {m.content}")
            else:
                who = m.character_name or m.author_name
                pending = " *(waiting for the DM)*" if m.state == "pending" else ""
                lines.append(f"**{who}:** {m.content}{pending}")
            lines.append("")
        lines += ["", "---", "Exported from the AI Dungeon Master."]
        return "\n".join(lines)

    # --- party -----------------------------------------------------------------------------------
    async def join(self, where: ChannelRef, actor: Actor, sheet: CharacterSheetInput) -> Character:
        """Add the caller's character. Raises ``UserInputError`` for a second character or a taken name."""
        session = await self._require(where)
        hp_default, ac_default = CLASS_DEFAULTS.get(sheet.char_class.strip().lower(), (10, 12))
        name = _text_option(sheet.name, "name", 40)
        max_hp = sheet.max_hp or hp_default
        async with session.lock:
            character = await self.store.characters.create(
                campaign_id=session.campaign.id, player_id=actor.user_id, player_name=actor.name[:80],
                name=name, char_class=_text_option(sheet.char_class, "class", 40),
                ancestry=_text_option(sheet.ancestry, "ancestry", 40), backstory=sheet.backstory.strip()[:1000],
                level=max(1, min(sheet.level, 20)), hp=max_hp, max_hp=max_hp, ac=sheet.ac or ac_default)
            session.party.append(character)
            session.invalidate_prefix()
            await self._note(session, f"{character.name} ({character.ancestry} {character.char_class}, "
                             f"played by {character.player_name}) joins the party.")
        return character

    async def _note(self, session: GameSession, text: str) -> None:
        note = await self.store.story.add_system(campaign_id=session.campaign.id, turn=session.campaign.turn,
                                                 content=text, token_count=self.count(text, session.config.model))
        session.history.append(note)

    async def character(self, where: ChannelRef, *, user_id: int | None = None,
                        name: str | None = None) -> Character:
        session = await self._require(where)
        if name:
            found = next((c for c in session.party if c.name.casefold() == name.strip().casefold()), None)
            if found is None:
                raise UserInputError(f"Nobody named {name!r} is in the party.")
            return found
        found = session.character_of(user_id or 0)
        if found is None:
            raise NotInParty()
        return found

    async def edit_character(self, where: ChannelRef, actor: Actor, **changes: object) -> Character:
        """Change the caller's own sheet. Raises ``NotInParty`` or ``UserInputError``."""
        session = await self._require(where)
        mine = session.character_of(actor.user_id)
        if mine is None:
            raise NotInParty()
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ("name", "char_class", "ancestry"):
                clean[key] = _text_option(str(value), key, 40)
            elif key in ("backstory", "notes"):
                clean[key] = str(value).strip()[:1000]
            elif key in ("hp", "max_hp", "ac", "level"):
                if not isinstance(value, int):
                    raise UserInputError(f"`{key}` must be a whole number.")
                clean[key] = value
            else:
                raise UserInputError(f"`{key}` can't be edited.")
        max_hp = clean.get("max_hp", mine.max_hp)
        if max_hp < 1:
            raise UserInputError("Maximum hit points must be at least 1.")
        if "hp" in clean and not 0 <= clean["hp"] <= max_hp:
            raise UserInputError(f"Hit points must be from 0 to your maximum ({max_hp}).")
        if "max_hp" in clean and "hp" not in clean and mine.hp > max_hp:
            clean["hp"] = max_hp
        if "level" in clean and not 1 <= clean["level"] <= 20:
            raise UserInputError("Level must be from 1 to 20.")
        if "ac" in clean and not 1 <= clean["ac"] <= 40:
            raise UserInputError("Armor class must be from 1 to 40.")
        async with session.lock:
            updated = await session._update_character(mine.id, **clean)
        return updated

    async def leave(self, where: ChannelRef, actor: Actor) -> Character:
        session = await self._require(where)
        mine = session.character_of(actor.user_id)
        if mine is None:
            raise NotInParty()
        async with session.lock:
            await self.store.characters.retire(mine.id)
            session.party = [c for c in session.party if c.id != mine.id]
            session.invalidate_prefix()
            await self._note(session, f"{mine.name} leaves the party.")
        return mine

    async def party(self, where: ChannelRef) -> Sequence[Character]:
        return tuple((await self._require(where)).party)

    async def character_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        session = await self._session(where.channel_id)
        if session is None:
            return []
        wanted = prefix.strip().casefold()
        return [c.name for c in session.party if c.name.casefold().startswith(wanted)]

    # --- turns -----------------------------------------------------------------------------------
    def _last_turn(self, session: GameSession) -> tuple[int, list[StoryMessage]]:
        dms = [m for m in session.history if m.role == "dm"]
        if not dms:
            raise NothingToUndo("There's no DM reply to change yet.")
        turn = dms[-1].turn
        return turn, [m for m in session.history if m.turn == turn]

    async def retry(self, where: ChannelRef, actor: Actor) -> None:
        """Regenerate the last DM reply (same actions, new narration and rolls); delivered with
        kind "retry". Raises ``NothingToUndo``, ``NotAllowed`` or an ``LLMError``."""
        session = await self._require(where)
        async with session.lock:
            turn, messages = self._last_turn(session)
            actors = {m.author_id for m in messages if m.role == "player"}
            if actor.user_id not in actors:
                self._require_manager(session, actor, "redo a turn they didn't act in")
            actions = [m for m in messages if m.role == "player"]
            old_dm = [m for m in messages if m.role == "dm"][-1]
            before = [m for m in session.history if m.turn < turn]
            prompt = session.build_messages(actions, history=before)
            player_ids = [a.author_id for a in actions if a.author_id is not None]
            await self.check_budget(session.campaign.guild_id, player_ids)
            async with self.narrator.thinking(session.channel_id):
                text, rolls = await session._converse(prompt, turn, player_ids, purpose="retry")
            model = session.config.model
            notes = [(n, self.count(n, model)) for n in _roll_notes(rolls)]
            stored_notes, dm = await self.store.story.complete_turn(
                campaign_id=session.campaign.id, turn=turn, action_ids=[], dm_content=text,
                dm_token_count=self.count(text, model), rolls=rolls, notes=notes,
                replaces_dm_message_id=old_dm.id)
            session.history = [m for m in session.history if m.id != old_dm.id] + stored_notes + [dm]
            await self.narrator.deliver(DMReply(
                channel_id=session.channel_id, text=text, turn=turn, rolls=tuple(rolls),
                answered_message_ids=tuple(a.platform_message_id for a in actions
                                           if a.platform_message_id is not None),
                kind="retry", campaign_id=session.campaign.id))

    async def undo(self, where: ChannelRef, actor: Actor) -> UndoResult:
        """Take back the newest turn (its actions, notes and reply). Raises ``NothingToUndo`` or
        ``NotAllowed``."""
        session = await self._require(where)
        async with session.lock:
            turn, messages = self._last_turn(session)
            actors = {m.author_id for m in messages if m.role == "player"}
            if actor.user_id not in actors:
                self._require_manager(session, actor, "undo a turn they didn't act in")
            count = await self.store.story.undo_turn(session.campaign.id, turn)
            session.history = [m for m in session.history if m.turn != turn]
            refreshed = await self.store.campaigns.get(session.campaign.id)
            if refreshed is not None:
                session.campaign = replace(session.campaign, turn=refreshed.turn)
        return UndoResult(turn=turn, messages_undone=count)

    # --- dice ------------------------------------------------------------------------------------
    async def roll(self, where: ChannelRef, actor: Actor, expression: str, reason: str = "") -> RollRecord:
        """Roll for a player with d20; stored (and noted in the story) when the channel has a campaign.
        Raises ``DiceError`` for a bad expression."""
        session = await self._session(where.channel_id)
        character = session.character_of(actor.user_id) if session else None
        record = make_roll(expression, reason=reason, roller_id=actor.user_id, roller_name=actor.name,
                           character_name=character.name if character else None,
                           campaign_id=session.campaign.id if session else None,
                           turn=session.campaign.turn if session else None)
        if session is not None:
            record = replace(record, id=await self.store.story.add_roll(record))
            who = character.name if character else actor.name
            why = f" for {record.reason}" if record.reason else ""
            await self._note(session, f"{who} rolled {record.expression}{why}: {record.total}")
        return record

    # --- admin -----------------------------------------------------------------------------------
    async def get_config(self, guild_id: int) -> GuildConfig:
        return await self.config(guild_id)

    async def set_config(self, guild_id: int, actor: Actor, key: str, value: str) -> GuildConfig:
        """Validate and store one server option (``default`` resets it). Raises ``NotAllowed`` for
        non-admins and ``UserInputError`` for a bad key or value."""
        if not (actor.is_admin or actor.is_owner):
            raise NotAllowed(player_message="Only server admins (Manage Server) can change settings.")
        parsed = parse_config_value(key, value)
        await self.store.guild_config.set(guild_id, key, parsed, updated_by=actor.user_id)
        self._configs.pop(guild_id, None)
        config = await self.config(guild_id)
        for session in self.sessions.values():
            if session.campaign.guild_id == guild_id:
                session.set_config(config)
        return config

    async def usage(self, where: ChannelRef) -> UsageReport:
        session = await self._session(where.channel_id)
        return await self.store.usage.report(
            where.guild_id, session.campaign.id if session else None,
            session.campaign.title if session else None, at=time.time())


__all__ = ["Game", "GameSession", "ModelPort", "parse_config_value", "CLASS_DEFAULTS", "NotAllowed"]
