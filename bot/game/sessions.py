"""Game sessions: one per channel, loaded on demand, one worker each, evicted when idle.

``Game`` implements ``bot.game.api.GameAPI`` for both adapters (Discord cogs, terminal play). Each
channel with a live campaign gets a ``GameSession`` holding its working memory — campaign, party,
running summary, the unsummarised story (``StoryMessage`` with token counts stored at insert time) and
the pending actions — loaded ONCE from the database. All turns of a channel run in that session's
single worker task and under its lock, so two players never get overlapping DM replies; different
channels run concurrently.

A turn's hot path: snapshot the pending actions when the collection window closes, build the prompt
from the cached system text and party text plus the sticky history window (stored token counts, no
recounting, no database read), call the model (with bounded tool rounds), commit the turn in ONE
transaction (``story.complete_turn``), deliver, then record the model usage and maybe schedule a memory
fold in the background. Actions that arrive while the DM is replying go into the next turn.

Who may act: anyone in the channel. A player without a character is still stored and answered
(labelled with their display name, "no character yet") so a newcomer is never ignored; the early close
of the collection window ("every party member has acted") counts only players with a character.

Failures: a model error, a spent budget or any bug in a turn becomes a kind notice to the table
(``DMReply(kind="notice")``); the actions stay pending and are answered with the next action, on
``/campaign resume``, or after a restart. The worker survives every exception.

Permissions: end/pause/resume/undo/retry need the campaign's creator or an admin (``Actor.is_admin``
or ``is_owner``); ``set_config`` needs an admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
                             NotInParty, OnCooldown, QueueFull)
from bot.game.filters import classify
from bot.game.options import CLASS_DEFAULTS, parse_config_value, sheet_defaults, text_option
from bot.game.tools import TOOL_SCHEMAS, ToolContext, run_tool
from bot.game.turns import Clock, MonotonicClock, TurnCollector
from bot.llm.types import ChatResult
from bot.models import (Campaign, CampaignStatusReport, Character, GuildConfig, RollRecord, StoryMessage,
                        Summary, UsageReport)
from bot.store import Store, default_guild_config

log = logging.getLogger(__name__)

PLAYER_BURST = 3  # actions one player may send within player_cooldown_seconds before being refused
EMPTY_REPLY = "*The DM pauses, looks around the table, and waits for what you do next.*"
FOLD_RETRY_TURNS = 3  # after a failed memory fold, try again this many turns later
EVICT_EVERY_SECONDS = 60.0
CLOSE_GRACE_SECONDS = 10.0  # how long close() lets a running turn finish
NO_CAMPAIGN_TTL_SECONDS = 30.0  # how long "this channel has no campaign" is remembered
NO_CAMPAIGN_CACHE_MAX = 10_000
RECENT_IDS = 256  # platform message ids remembered per session against duplicate deliveries
SHEET_MEMORY_TURNS = 20  # turns whose sheet changes undo/retry can revert
FAILED_TURN_NOTICE = ("Something went wrong on the DM's side of the screen. Your actions are saved; the DM "
                      "will answer them with the next action.")

__all__ = ["CLASS_DEFAULTS", "Game", "GameSession", "ModelPort", "NotAllowed", "TurnTiming",
           "parse_config_value"]


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
        """Bot time of the turn, seconds: total minus the model's own time."""
        return self.delivered_at - self.closed_at - self.model_s


class ModelPort(Protocol):
    """What the game needs of the model client (``bot.llm.LLMClient`` satisfies it).

    ``chat`` takes OpenAI chat messages and function-tool schemas and returns a ``ChatResult``; it
    raises ``bot.llm.errors.LLMError`` subclasses (all ``BotError``) for endpoint trouble.
    """

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None,
                   temperature: float | None = None, max_tokens: int | None = None,
                   tools: list[dict[str, Any]] | None = None) -> ChatResult: ...


TokenCounter = Callable[[str, str], int]
"""``(text, model) -> tokens``."""


def _default_counter() -> TokenCounter:
    from bot.llm.tokens import count_tokens

    return count_tokens


class GameSession:
    """The working memory and turn worker of one channel's campaign. Created by ``Game``; not for
    adapters.

    Attributes:
        campaign, config, party, summary: current state (replaced, never mutated in place).
        history: answered, unsummarised story messages in story order (by turn, then id).
        pending: stored actions not yet answered, oldest first.
        busy: True while a turn or retry is being answered.
    """

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
        self.collector = TurnCollector(self._window_seconds(config), s.turn_extend_seconds,
                                       s.turn_max_window_seconds)
        self.window = ctxmod.HistoryWindow()
        self.last_active = game.clock.now()
        self.recent_actions: dict[int, deque[float]] = {}
        self.storing = 0  # actions past the queue check whose INSERT has not returned yet
        self.busy = False
        self.closed = False
        self.recovering = bool(pending)
        self._recent_ids: deque[int] | None = None
        self._recent_set: set[int] | None = None
        self._stalled: set[int] = set()  # pending action ids whose turn failed: wait for a new action
        self._system: str | None = None
        self._party_text: str | None = None
        self._worker: asyncio.Task[None] | None = None
        self._parked = False
        self._fold_task: asyncio.Task[bool] | None = None
        self._fold_after_turn = 0
        self._model_s = 0.0
        self._sheets_before: dict[int, dict[int, Character]] = {}  # turn -> sheets it changed, as before
        if pending:
            self.kick()

    # --- state helpers ---------------------------------------------------------------------------
    @property
    def channel_id(self) -> int:
        """The channel this session plays in."""
        return self.campaign.channel_id

    def party_ids(self) -> set[int]:
        """User ids of the players who have a character."""
        return {c.player_id for c in self.party}

    def character_of(self, player_id: int) -> Character | None:
        """The player's active character, or None."""
        return next((c for c in self.party if c.player_id == player_id), None)

    @staticmethod
    def _window_seconds(config: GuildConfig) -> float:
        return 0.0 if config.turn_mode == "mention" else config.turn_window_seconds

    def invalidate_prefix(self) -> None:
        """Forget the cached system text (summary, options or campaign changed)."""
        self._system = None

    def invalidate_party(self) -> None:
        """Forget the cached party text (a sheet changed, someone joined or left)."""
        self._party_text = None

    def set_party(self, party: list[Character]) -> None:
        """Replace the party (and the cached party text)."""
        self.party = party
        self._party_text = None

    def set_config(self, config: GuildConfig) -> None:
        """Apply a server's changed options (turn mode, window, model, rating...)."""
        self.config = config
        s = self.game.settings
        self.collector.configure(self._window_seconds(config), s.turn_extend_seconds, s.turn_max_window_seconds)
        self.invalidate_prefix()
        self.wake.set()  # a shorter window may already be over

    def system_text(self) -> str:
        """The system message (persona, rules, campaign, summary), cached and byte-identical until
        ``invalidate_prefix``."""
        if self._system is None:
            self._system = ctxmod.system_prompt(self.campaign, self.config, self.summary)
        return self._system

    def party_text(self) -> str:
        """The party's sheets as text, cached until the party changes."""
        if self._party_text is None:
            self._party_text = ctxmod.party_block(self.party)
        return self._party_text

    def build_messages(self, actions: Sequence[StoryMessage], history: Sequence[StoryMessage] | None = None
                       ) -> list[dict[str, Any]]:
        """The prompt for a turn answering ``actions`` (a new list). ``history`` defaults to the
        session's unsummarised story; its window is chosen by the token budget."""
        window = self.window.select(self.history if history is None else history,
                                    self.game.settings.history_token_budget)
        return ctxmod.build_prompt(self.system_text(), window, self.party_text(), actions)

    def remember_message_id(self, message_id: int) -> bool:
        """Note a platform message id; False when it was seen recently (a duplicate delivery)."""
        if self._recent_ids is None or self._recent_set is None:
            self._recent_ids, self._recent_set = deque(), set()
        if message_id in self._recent_set:
            return False
        self._recent_ids.append(message_id)
        self._recent_set.add(message_id)
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_set.discard(self._recent_ids.popleft())
        return True

    # --- the worker ------------------------------------------------------------------------------
    def kick(self) -> None:
        """Tell the worker there may be work (starting it on first use)."""
        self.wake.set()
        if (self._worker is None or self._worker.done()) and not self.closed:
            self._worker = asyncio.create_task(self._run(), name=f"session-{self.channel_id}")

    def has_work(self) -> bool:
        """True when an active campaign has pending actions that did not just fail."""
        if self.campaign.status != "active" or not self.pending:
            return False
        return not self._stalled or any(p.id not in self._stalled for p in self.pending)

    @property
    def parked(self) -> bool:
        """True when the worker is not running code: waiting for an action or for the window to close
        (or not started)."""
        return self._worker is None or self._worker.done() or self._parked

    @property
    def fold_running(self) -> bool:
        """True while a memory fold is in progress."""
        return self._fold_task is not None and not self._fold_task.done()

    @property
    def quiet(self) -> bool:
        """True when nothing is running or about to run right now: the worker is parked, no wake-up is
        pending, no turn and no fold is running."""
        return self.parked and not self.wake.is_set() and not self.busy and not self.fold_running

    async def _park(self, until: float | None) -> bool:
        self._parked = True
        try:
            if until is None:
                await self.wake.wait()
                woke = True
            else:
                woke = await self.game.clock.wait(self.wake, until)
        finally:
            self._parked = False
        if woke:
            self.wake.clear()
        return woke

    async def _run(self) -> None:
        clock = self.game.clock
        while not self.closed:
            if not self.has_work():
                await self._park(None)
                continue
            if not self.recovering and self.collector.is_open:
                while (not self.closed and self.campaign.status == "active"
                       and not self.collector.ready(clock.now(), self.party_ids())):
                    await self._park(self.collector.deadline)
                if self.closed or not self.has_work():
                    continue
            # An unopened window with work (resume after a pause, recovery) is answered at once.
            kind = "recovered" if self.recovering else "turn"
            self.recovering = False
            actions = list(self.pending)
            self.collector.reset()
            try:
                answered = await self.play_turn(actions, kind=kind)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must survive anything; the actions stay pending
                log.exception("turn in channel %s failed", self.channel_id)
                answered = False
                with contextlib.suppress(Exception):
                    await self.game.notice(self.channel_id, FAILED_TURN_NOTICE)
            if not answered:
                self._stalled.update(a.id for a in actions)

    async def play_turn(self, actions: list[StoryMessage], *, kind: str = "turn") -> bool:
        """Answer ``actions`` (pending, oldest first) in one DM reply. Returns True when the reply was
        stored and delivered.

        Expected failures (model errors, budgets: ``BotError``) become a notice to the table and return
        False; sheet changes the model made during the failed turn are undone; the actions stay
        pending. Other exceptions propagate (the worker logs them).
        """
        game = self.game
        closed_at = time.perf_counter()
        calls: list[ChatResult] = []
        player_ids = list(dict.fromkeys(a.author_id for a in actions if a.author_id is not None))
        delivered = False
        async with self.lock:
            self.busy = True
            self._model_s = 0.0
            turn = self.campaign.turn + 1
            before = {c.id: c for c in self.party}
            tools = ToolContext(self.campaign.id, turn, list(self.party), update=self._update_character)
            try:
                try:
                    await game.check_budget(self.campaign.guild_id, player_ids)
                    messages = self.build_messages(actions)
                    async with game.narrator.thinking(self.channel_id):
                        text = await self._converse(messages, tools, calls)
                except BotError as exc:
                    log.warning("turn %s in channel %s not answered: %s (status %s, request %s)", turn,
                                self.channel_id, type(exc).__name__, getattr(exc, "status", None),
                                getattr(exc, "request_id", None))
                    await self._restore_sheets(before)
                    await game.notice(self.channel_id, exc.player_message)
                    return False
                except Exception:
                    await self._restore_sheets(before)
                    raise
                stored_notes, dm = await game.store.story.complete_turn(
                    campaign_id=self.campaign.id, turn=turn, action_ids=[a.id for a in actions],
                    dm_content=text, dm_token_count=game.count(text, self.config.model), rolls=tools.rolls,
                    notes=self._notes(tools))
                answered = {a.id for a in actions}
                self.pending = [p for p in self.pending if p.id not in answered]
                self._stalled -= answered
                self.history.extend(replace(a, state="answered", turn=turn) for a in actions)
                self.history.extend(stored_notes)
                self.history.append(dm)
                self.campaign = replace(self.campaign, turn=turn)
                self.remember_sheets(turn, before)
                self.last_active = game.clock.now()
                game.turn_timings.append(TurnTiming(self.channel_id, turn, closed_at, time.perf_counter(),
                                                    self._model_s, len(messages)))
                await game.narrator.deliver(DMReply(
                    channel_id=self.channel_id, text=_with_changes(text, tools.changes), turn=turn,
                    rolls=tuple(tools.rolls), answered_message_ids=_platform_ids(actions),
                    kind=kind, campaign_id=self.campaign.id))  # type: ignore[arg-type]
                delivered = True
            finally:
                self.busy = False
                await game.record_calls(self.campaign, player_ids, "turn", calls)
        if delivered:
            self.maybe_fold()
        return delivered

    async def _converse(self, messages: list[dict[str, Any]], tools: ToolContext,
                        calls: list[ChatResult]) -> str:
        """Call the model with tools for at most ``max_tool_rounds`` rounds, then once without tools.
        Tool calls run through ``tools``; every result is appended to ``calls``. Returns the narration.
        Raises ``LLMError`` (a ``BotError``)."""
        game = self.game
        rounds = game.settings.max_tool_rounds
        base_len = len(messages)
        text = ""
        for round_no in range(rounds + 1):
            with_tools = round_no < rounds
            if not with_tools and len(messages) > base_len:
                messages = _without_tool_rounds(messages[:base_len], tools)
            started = time.perf_counter()
            result = await game.llm.chat(messages, model=self.config.model, temperature=self.config.temperature,
                                         max_tokens=self.config.max_tokens,
                                         tools=TOOL_SCHEMAS if with_tools else None)
            self._model_s += time.perf_counter() - started
            calls.append(result)
            if result.tool_calls and with_tools:
                messages.append(result.assistant_message())
                for call in result.tool_calls:
                    output = await run_tool(tools, call.name, call.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
                continue
            text = (result.text or "").strip()
            break
        return text or EMPTY_REPLY

    def _notes(self, tools: ToolContext) -> list[tuple[str, int]]:
        """Table notes of a turn (dice results, sheet changes) with their token counts, so the model
        remembers them in later turns."""
        notes = []
        if tools.rolls:
            notes.append(_roll_note(tools.rolls))
        if tools.changes:
            notes.append("Sheet changes: " + "; ".join(tools.changes))
        model = self.config.model
        return [(n, self.game.count(n, model)) for n in notes]

    async def _update_character(self, character_id: int, **changes: Any) -> Character:
        updated = await self.game.store.characters.update(character_id, **changes)
        self.set_party([updated if c.id == updated.id else c for c in self.party])
        return updated

    async def _restore_sheets(self, before: dict[int, Character]) -> None:
        """Put back the hit points, conditions and inventory of party sheets that differ from
        ``before`` (character id -> sheet)."""
        for c in list(self.party):
            old = before.get(c.id)
            if old is not None and (old.hp, old.conditions, old.inventory) != (c.hp, c.conditions, c.inventory):
                await self._update_character(c.id, hp=old.hp, conditions=list(old.conditions),
                                             inventory=list(old.inventory))

    def remember_sheets(self, turn: int, before: dict[int, Character]) -> None:
        """Keep the sheets ``turn`` changed as they were before it, for undo/retry (the newest
        ``SHEET_MEMORY_TURNS`` turns; not kept across restarts or evictions)."""
        changed = {cid: c for cid, c in before.items() if any(p.id == cid and p != c for p in self.party)}
        self._sheets_before.pop(turn, None)
        if changed:
            self._sheets_before[turn] = changed
            while len(self._sheets_before) > SHEET_MEMORY_TURNS:
                del self._sheets_before[min(self._sheets_before)]

    async def restore_turn_sheets(self, turn: int) -> None:
        """Undo the sheet changes of ``turn`` (used by undo and retry of the newest turn). Unknown after
        a restart or eviction: then sheets stay as they are."""
        before = self._sheets_before.pop(turn, None)
        if before:
            await self._restore_sheets(before)

    def last_turn(self) -> tuple[int, list[StoryMessage]]:
        """The newest answered turn and its messages in memory. Raises ``NothingToUndo``."""
        dm = next((m for m in reversed(self.history) if m.role == "dm"), None)
        if dm is None:
            raise NothingToUndo()
        return dm.turn, [m for m in self.history if m.turn == dm.turn]

    # --- memory ----------------------------------------------------------------------------------
    def maybe_fold(self) -> None:
        """Schedule a background fold when the unsummarised story passed the trigger."""
        s = self.game.settings
        if self.closed or (self._fold_task is not None and not self._fold_task.done()):
            return
        if self.campaign.turn < self._fold_after_turn:
            return
        plan = memory.plan_fold(self.history, trigger_tokens=s.summary_trigger_tokens,
                                keep_tokens=s.history_token_budget,
                                below_id=min((p.id for p in self.pending), default=None))
        if plan is not None:
            self._fold_task = asyncio.create_task(self.fold(plan), name=f"fold-{self.channel_id}")

    async def fold(self, plan: memory.FoldPlan) -> bool:
        """Fold ``plan`` into the running summary (one model call, then one transaction). On any
        failure nothing changes and the fold is tried again ``FOLD_RETRY_TURNS`` turns later.
        Returns True when the summary was replaced."""
        game = self.game
        s = game.settings
        model = s.summary_model or self.config.model
        try:
            result = await game.llm.chat(memory.fold_messages(self.summary, plan, s.summary_token_cap),
                                         model=model, temperature=0.3, max_tokens=s.summary_token_cap)
            await game.record_calls(self.campaign, [], "summary", [result])
            text = memory.cap_summary(result.text or "", s.summary_token_cap, lambda t: game.count(t, model))
            if not text:
                raise ValueError("the model returned an empty summary")
            async with self.lock:
                if [m.id for m in self.history[:len(plan.messages)]] != [m.id for m in plan.messages]:
                    raise ValueError("the story changed (undo/retry) while summarising")
                self.summary = await game.store.summaries.fold(
                    self.campaign.id, content=text, token_count=game.count(text, self.config.model),
                    through_message_id=plan.through_id)
                self.history = self.history[len(plan.messages):]
                self.invalidate_prefix()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("memory fold for campaign %s failed (%s: %s); will retry in %d turns",
                        self.campaign.id, type(exc).__name__, exc, FOLD_RETRY_TURNS)
            self._fold_after_turn = self.campaign.turn + FOLD_RETRY_TURNS
            return False
        log.info("campaign %s: folded %d messages into a %d-token summary", self.campaign.id,
                 len(plan.messages), self.summary.token_count)
        return True

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the worker and any fold. A running turn gets up to ``grace_s`` seconds to finish;
        after that it is cancelled and its actions stay pending (answered after a restart)."""
        self.closed = True
        self.wake.set()
        worker = self._worker
        if worker is not None and not worker.done() and grace_s > 0 and self.busy:
            await asyncio.wait({worker}, timeout=grace_s)
        tasks = [t for t in (worker, self._fold_task) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _roll_note(rolls: Sequence[RollRecord]) -> str:
    parts = []
    for r in rolls:
        who = f"{r.character_name} " if r.character_name else ""
        why = f" for {r.reason}" if r.reason else ""
        parts.append(f"{who}{r.expression}{why} = {r.total}")
    return "Dice rolled: " + "; ".join(parts)


def _with_changes(text: str, changes: Sequence[str]) -> str:
    """The narration as delivered: with a short line listing the sheet changes, if any."""
    if not changes:
        return text
    return f"{text}\n\n*Sheets: {'; '.join(changes)}*"


def _platform_ids(actions: Sequence[StoryMessage]) -> tuple[int, ...]:
    return tuple(a.platform_message_id for a in actions if a.platform_message_id is not None)


def _without_tool_rounds(base: list[dict[str, Any]], tools: ToolContext) -> list[dict[str, Any]]:
    """The prompt for the last, tool-free call: the tool rounds folded into the last user message as
    plain text, so endpoints that refuse tool history without tool definitions still answer."""
    lines = [f"- {name}({args}) -> {out}" for name, args, out in tools.calls]
    last = dict(base[-1])
    last["content"] = (f"{last['content']}\n\n[Table]: The DM already used these tools this turn (results "
                       "are real and shown to the table):\n" + "\n".join(lines)
                       + "\nNow narrate the outcome without calling any more tools.")
    return [*base[:-1], last]


class Game:
    """The game core (implements ``bot.game.api.GameAPI``).

    Args:
        store: the database queries (``bot.store.Store``).
        llm: the model client (``ModelPort``; ``bot.llm.LLMClient`` in production).
        settings: process settings (defaults for server options, timings, budgets, limits).
        narrator: the adapter that shows replies (Discord or terminal).
        clock: time source for turn windows, cooldowns and idle eviction (default ``MonotonicClock``;
            tests pass ``ManualClock``).
        count_tokens: ``(text, model) -> tokens``; default ``bot.llm.tokens.count_tokens`` (tiktoken,
            offline), loaded on first use.
    """

    def __init__(self, *, store: Store, llm: ModelPort, settings: Settings, narrator: Narrator,
                 clock: Clock | None = None, count_tokens: TokenCounter | None = None) -> None:
        self.store = store
        self.llm = llm
        self.settings = settings
        self.narrator = narrator
        self.clock: Clock = clock or MonotonicClock()
        self._count = count_tokens
        self.sessions: dict[int, GameSession] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._configs: dict[int, GuildConfig] = {}
        self._no_campaign: dict[int, float] = {}
        self._evictor: asyncio.Task[None] | None = None
        self.defaults = default_guild_config(settings)
        self.turn_timings: deque[TurnTiming] = deque(maxlen=10_000)

    def count(self, text: str, model: str) -> int:
        """Tokens of ``text`` for ``model`` (each stored message is counted once, when stored)."""
        if self._count is None:
            self._count = _default_counter()
        return self._count(text, model)

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the sessions that have actions left unanswered by a previous process (they are
        answered at once, with ``kind="recovered"``) and start idle eviction."""
        for campaign in await self.store.campaigns.with_pending_actions():
            session = await self._session(campaign.channel_id)
            if session is not None:
                log.info("campaign %s: answering %d actions left pending by the last run", campaign.id,
                         len(session.pending))
        if self._evictor is None:
            self._evictor = asyncio.create_task(self._evict_loop(), name="session-evictor")

    async def close(self, grace_s: float = CLOSE_GRACE_SECONDS) -> None:
        """Cancel background work and close every session; running turns get up to ``grace_s``
        seconds to finish (their actions stay pending otherwise)."""
        if self._evictor is not None:
            self._evictor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor
            self._evictor = None
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(s.close(grace_s) for s in sessions), return_exceptions=True)

    async def drain(self, timeout: float = 60.0) -> bool:
        """Wait (real time) until no session has actions waiting to be answered, a turn or a fold
        running. Actions whose turn failed do not count. Returns False on timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if all(not s.has_work() and s.quiet for s in self.sessions.values()):
                return True
            await asyncio.sleep(0.02)
        return False

    def settled(self) -> bool:
        """True when every session is quiet at the current clock time (for tests with ManualClock)."""
        return all(s.quiet for s in self.sessions.values())

    async def _evict_loop(self) -> None:
        while True:
            await asyncio.sleep(EVICT_EVERY_SECONDS)
            try:
                await self.evict_idle()
            except Exception:
                log.exception("evicting idle sessions failed")

    async def evict_idle(self) -> int:
        """Unload sessions idle for ``session_idle_seconds`` with nothing pending or running.
        Returns how many were unloaded; they reload from the database on their next use."""
        now = self.clock.now()
        idle = [s for s in self.sessions.values()
                if not s.pending and s.quiet and now - s.last_active >= self.settings.session_idle_seconds]
        for session in idle:
            if self.sessions.get(session.channel_id) is session:
                del self.sessions[session.channel_id]
            await session.close()
        if idle:
            log.debug("evicted %d idle sessions", len(idle))
        return len(idle)

    # --- lookups ---------------------------------------------------------------------------------
    async def config(self, guild_id: int | None) -> GuildConfig:
        """The effective options of a server (cached; ``None`` guild: the process defaults)."""
        if guild_id is None:
            return self.defaults
        cached = self._configs.get(guild_id)
        if cached is None:
            cached = await self.store.guild_config.effective(guild_id, self.defaults)
            self._configs[guild_id] = cached
        return cached

    async def _session(self, channel_id: int) -> GameSession | None:
        """The channel's session, loading it from the database on first use; None without a live
        campaign."""
        session = self.sessions.get(channel_id)
        if session is not None:
            return session
        miss = self._no_campaign.get(channel_id)
        if miss is not None and time.monotonic() < miss:
            return None
        lock = self._loading.setdefault(channel_id, asyncio.Lock())
        try:
            async with lock:
                session = self.sessions.get(channel_id)
                if session is not None:
                    return session
                campaign = await self.store.campaigns.live_in_channel(channel_id)
                if campaign is None:
                    if len(self._no_campaign) >= NO_CAMPAIGN_CACHE_MAX:
                        self._no_campaign.clear()
                    self._no_campaign[channel_id] = time.monotonic() + NO_CAMPAIGN_TTL_SECONDS
                    return None
                party = await self.store.characters.party(campaign.id)
                summary = await self.store.summaries.get(campaign.id)
                loaded = await self.store.story.context_window(
                    campaign.id, after_id=summary.through_message_id if summary else 0)
                history = sorted((m for m in loaded if m.state == "answered"), key=lambda m: (m.turn, m.id))
                pending = await self.store.story.pending(campaign.id)
                config = await self.config(campaign.guild_id)
                session = GameSession(self, campaign, config, party, summary, history, pending)
                self.sessions[channel_id] = session
                return session
        finally:
            if not lock.locked():
                self._loading.pop(channel_id, None)

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
        """Raise ``BudgetExhausted`` when the server's or a player's daily token budget (tokens per
        UTC day, 0 = unlimited) is spent. Reads the database only when a budget is set."""
        config = await self.config(guild_id)
        if config.guild_daily_token_budget:
            used = await self.store.usage.tokens_today(guild_id)
            if used >= config.guild_daily_token_budget:
                raise BudgetExhausted(player_message="This server's daily DM budget is spent. The story "
                                      "continues tomorrow (UTC), or an admin can raise it with /config set.")
        if config.player_daily_token_budget:
            for pid in dict.fromkeys(player_ids):
                if await self.store.usage.tokens_today(guild_id, pid) >= config.player_daily_token_budget:
                    raise BudgetExhausted(player_message="A player's daily DM budget is spent; the DM "
                                          "will answer their actions again tomorrow (UTC).")

    async def record_usage(self, campaign: Campaign | None, player_ids: Sequence[int], purpose: str,
                           result: ChatResult) -> None:
        """Store one model call's tokens and US dollars (``purpose``: "turn", "summary", "retry")."""
        await self.store.usage.record(
            guild_id=campaign.guild_id if campaign else None, campaign_id=campaign.id if campaign else None,
            player_ids=player_ids, purpose=purpose, model=result.model or "unknown",
            prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens,
            cached_prompt_tokens=result.usage.cached_prompt_tokens, cost_usd=result.cost_usd)

    async def record_calls(self, campaign: Campaign | None, player_ids: Sequence[int], purpose: str,
                           calls: Sequence[ChatResult]) -> None:
        """``record_usage`` for each call; a database problem is logged, never raised (the reply is
        already out)."""
        for result in calls:
            try:
                await self.record_usage(campaign, player_ids, purpose, result)
            except Exception:
                log.exception("recording model usage failed")

    async def notice(self, channel_id: int, text: str) -> None:
        """Tell a channel something as the table's DM (errors, budgets): ``DMReply(kind="notice")``."""
        await self.narrator.deliver(DMReply(channel_id=channel_id, text=text, kind="notice"))

    # --- play ------------------------------------------------------------------------------------
    async def handle_message(self, msg: IncomingMessage) -> Intake:
        """Filter, store (commit) and queue a message; see ``GameAPI.handle_message``. Never raises
        for the message itself (refusals are an ``Intake``); database errors propagate."""
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
        if msg.message_id is not None and not session.remember_message_id(msg.message_id):
            return Intake("ignored", "duplicate")
        try:
            await self.check_budget(msg.guild_id, [msg.author_id])
        except BudgetExhausted as exc:
            return Intake("refused", "budget", exc.player_message)
        # No await from here to the store call: the queue slot and the cooldown entry are taken in one
        # step, so a burst of messages handled concurrently cannot all slip past the limits.
        if len(session.pending) + session.storing >= self.settings.channel_queue_limit:
            return Intake("refused", "queue_full", QueueFull().player_message)
        now = self.clock.now()
        cooldown = self.settings.player_cooldown_seconds
        recent = session.recent_actions.get(msg.author_id)
        if cooldown and recent is not None and len(recent) == PLAYER_BURST and now - recent[0] < cooldown:
            return Intake("refused", "cooldown", OnCooldown(cooldown - (now - recent[0])).player_message)
        if cooldown:
            if recent is None:
                recent = session.recent_actions[msg.author_id] = deque(maxlen=PLAYER_BURST)
            recent.append(now)
        character = session.character_of(msg.author_id)
        text = msg.content.strip()
        session.storing += 1
        try:
            stored, new = await self.store.story.add_action(
                campaign_id=session.campaign.id, turn=session.campaign.turn + 1, author_id=msg.author_id,
                author_name=msg.author_name[:80], character_name=character.name if character else None,
                content=text, token_count=self.count(text, session.config.model),
                platform_message_id=msg.message_id, created_at=msg.created_at)
        finally:
            session.storing -= 1
        if not new:
            return Intake("ignored", "duplicate", story_message_id=stored.id)
        if self.sessions.get(msg.channel_id) is not session or session.closed:
            return Intake("queued", "action", story_message_id=stored.id)  # ended meanwhile: stored only
        session.last_active = now
        session.pending.append(stored)
        session.collector.add(now, msg.author_id)
        session.kick()
        return Intake("queued", "action", story_message_id=stored.id)

    # --- campaign --------------------------------------------------------------------------------
    async def start_campaign(self, where: ChannelRef, actor: Actor, *, title: str, setting: str = "",
                             tone: str = "") -> Campaign:
        """Start a campaign in a channel (title 1-100 characters, setting up to 1500, tone up to 200).
        Raises ``UserInputError`` if one is live there, the channel is not allowed, or a field is bad."""
        config = await self.config(where.guild_id)
        if config.allowed_channel_ids and where.channel_id not in config.allowed_channel_ids:
            raise UserInputError("The DM doesn't play in this channel on this server "
                                 "(see /config show: allowed_channel_ids).")
        campaign = await self.store.campaigns.create(
            guild_id=where.guild_id, channel_id=where.channel_id, title=text_option(title, "title", 100),
            setting=text_option(setting, "setting", 1500, allow_empty=True, multiline=True),
            tone=text_option(tone, "tone", 200, allow_empty=True), created_by=actor.user_id)
        self._no_campaign.pop(where.channel_id, None)
        await self._session(where.channel_id)
        log.info("campaign %s started in channel %s by %s", campaign.id, where.channel_id, actor.user_id)
        return campaign

    async def _set_status(self, where: ChannelRef, actor: Actor, status: str, what: str) -> Campaign:
        session = await self._require(where)
        self._require_manager(session, actor, what)
        async with session.lock:
            await self.store.campaigns.set_status(session.campaign.id, status)
            session.campaign = replace(session.campaign, status=status)  # type: ignore[arg-type]
        if status == "ended":
            if self.sessions.get(where.channel_id) is session:
                del self.sessions[where.channel_id]
            await session.close()
        elif status == "active":
            session._stalled.clear()
            session.kick()
        else:
            session.wake.set()
        return session.campaign

    async def end_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """End the channel's campaign (creator or admin). Raises ``NoCampaign`` or ``NotAllowed``."""
        return await self._set_status(where, actor, "ended", "end the campaign")

    async def pause_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """Pause: messages are ignored until resumed (creator or admin). Raises ``NoCampaign``,
        ``NotAllowed`` or ``CampaignNotActive``."""
        session = await self._require(where)
        if session.campaign.status == "paused":
            raise CampaignNotActive("The campaign is already paused.")
        return await self._set_status(where, actor, "paused", "pause the campaign")

    async def resume_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """Resume a paused campaign; waiting actions are answered at once (creator or admin)."""
        session = await self._require(where)
        if session.campaign.status == "active":
            raise CampaignNotActive("The campaign is already running.")
        return await self._set_status(where, actor, "active", "resume the campaign")

    async def status(self, where: ChannelRef) -> CampaignStatusReport:
        """The campaign, its party, counts and what is waiting. Raises ``NoCampaign``."""
        session = await self._require(where)
        return CampaignStatusReport(
            campaign=session.campaign, party=tuple(session.party),
            story_messages=await self.store.story.count(session.campaign.id),
            pending_actions=len(session.pending),
            summary_tokens=session.summary.token_count if session.summary else 0, busy=session.busy,
            extra={"turn_mode": session.config.turn_mode, "model": session.config.model,
                   "unsummarised_tokens": memory.unsummarised_tokens(session.history)})

    async def recap(self, where: ChannelRef) -> str:
        """The story so far (Markdown): the running summary and the latest turns; no model call."""
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
        """The whole transcript as Markdown: title, setting, party, every turn with its actions, table
        notes (dice, sheet changes) and the DM's reply; actions still waiting are marked."""
        session = await self._require(where)
        c = session.campaign
        lines = [f"# {c.title}", "", f"*Setting:* {c.setting or '—'}  ", f"*Tone:* {c.tone or '—'}", "",
                 "## Party", ""]
        lines += [f"- **{p.name}**, {p.ancestry} {p.char_class} (level {p.level}, HP {p.hp}/{p.max_hp}, "
                  f"AC {p.ac}) — played by {p.player_name}" for p in session.party] or ["- (nobody)"]
        lines += ["", "## Story", ""]
        messages = await self.store.story.transcript(c.id)
        answered = sorted((m for m in messages if m.state != "pending"), key=lambda m: (m.turn, m.id))
        waiting = [m for m in messages if m.state == "pending"]
        turn = None
        for m in answered:
            if m.turn != turn:
                turn = m.turn
                lines += [f"### Turn {turn}" if turn else "### Before the first turn", ""]
            lines += [_export_line(m), ""]
        if waiting:
            lines += ["### Waiting for the DM", ""]
            lines += [line for m in waiting for line in (_export_line(m), "")]
        lines += ["---", "Exported from the AI Dungeon Master."]
        return "\n".join(lines)

    # --- party -----------------------------------------------------------------------------------
    async def join(self, where: ChannelRef, actor: Actor, sheet: CharacterSheetInput) -> Character:
        """Add the caller's character (name/class/ancestry 1-40 characters, backstory up to 1000; hit
        points and AC default by class). Raises ``UserInputError`` for a second character, a taken
        name or a bad field, ``NoCampaign``."""
        session = await self._require(where)
        hp_default, ac_default = sheet_defaults(sheet.char_class)
        name = text_option(sheet.name, "name", 40)
        char_class = text_option(sheet.char_class, "class", 40)
        ancestry = text_option(sheet.ancestry, "ancestry", 40)
        backstory = text_option(sheet.backstory, "backstory", 1000, allow_empty=True, multiline=True)
        max_hp = sheet.max_hp if sheet.max_hp is not None else hp_default
        ac = sheet.ac if sheet.ac is not None else ac_default
        if not 1 <= max_hp <= 999:
            raise UserInputError("Maximum hit points must be from 1 to 999.")
        if not 1 <= ac <= 40:
            raise UserInputError("Armor class must be from 1 to 40.")
        if not 1 <= sheet.level <= 20:
            raise UserInputError("Level must be from 1 to 20.")
        async with session.lock:
            character = await self.store.characters.create(
                campaign_id=session.campaign.id, player_id=actor.user_id, player_name=actor.name[:80],
                name=name, char_class=char_class, ancestry=ancestry, backstory=backstory, level=sheet.level,
                hp=max_hp, max_hp=max_hp, ac=ac)
            session.set_party([*session.party, character])
            await self._note(session, f"{character.name} ({character.ancestry} {character.char_class}, "
                             f"played by {character.player_name}) joins the party.")
        return character

    async def _note(self, session: GameSession, text: str) -> None:
        """Store a table event in the story (and the session's memory) so the model sees it."""
        note = await self.store.story.add_system(campaign_id=session.campaign.id, turn=session.campaign.turn,
                                                 content=text, token_count=self.count(text, session.config.model))
        session.history.append(note)

    async def character(self, where: ChannelRef, *, user_id: int | None = None,
                        name: str | None = None) -> Character:
        """A sheet by character name, or by player. Raises ``UserInputError``/``NotInParty``."""
        session = await self._require(where)
        if name:
            found = next((c for c in session.party if c.name.casefold() == name.strip().casefold()), None)
            if found is None:
                raise UserInputError(f"Nobody named {name.strip()[:40]!r} is in the party.")
            return found
        found = session.character_of(user_id) if user_id is not None else None
        if found is None:
            raise NotInParty()
        return found

    async def edit_character(self, where: ChannelRef, actor: Actor, **changes: object) -> Character:
        """Change the caller's own sheet: name, char_class, ancestry (1-40 characters), backstory,
        notes (up to 1000), hp (0..max_hp), max_hp (1-999), ac (1-40), level (1-20). Raises
        ``NotInParty`` or ``UserInputError``."""
        session = await self._require(where)
        mine = session.character_of(actor.user_id)
        if mine is None:
            raise NotInParty()
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ("name", "char_class", "ancestry"):
                clean[key] = text_option(str(value), "class" if key == "char_class" else key, 40)
            elif key in ("backstory", "notes"):
                clean[key] = text_option(str(value), key, 1000, allow_empty=True, multiline=True)
            elif key in ("hp", "max_hp", "ac", "level"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise UserInputError(f"`{key}` must be a whole number.")
                clean[key] = value
            else:
                raise UserInputError(f"`{key}` can't be edited.")
        max_hp = clean.get("max_hp", mine.max_hp)
        if not 1 <= max_hp <= 999:
            raise UserInputError("Maximum hit points must be from 1 to 999.")
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
            if "name" in clean and clean["name"] != mine.name:
                await self._note(session, f"{mine.name} is now called {updated.name}.")
        return updated

    async def leave(self, where: ChannelRef, actor: Actor) -> Character:
        """Retire the caller's character (kept in the story). Raises ``NotInParty``."""
        session = await self._require(where)
        mine = session.character_of(actor.user_id)
        if mine is None:
            raise NotInParty()
        async with session.lock:
            await self.store.characters.retire(mine.id)
            session.set_party([c for c in session.party if c.id != mine.id])
            await self._note(session, f"{mine.name} leaves the party.")
        session.wake.set()  # the party shrank: the window may close early now
        return mine

    async def party(self, where: ChannelRef) -> Sequence[Character]:
        """The active characters in joining order. Raises ``NoCampaign``."""
        return tuple((await self._require(where)).party)

    async def character_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """For autocomplete: active character names starting with ``prefix`` (case-insensitive); an
        empty list without a campaign."""
        session = await self._session(where.channel_id)
        if session is None:
            return []
        wanted = prefix.strip().casefold()
        return [c.name for c in session.party if c.name.casefold().startswith(wanted)]

    # --- turns -----------------------------------------------------------------------------------
    async def retry(self, where: ChannelRef, actor: Actor) -> None:
        """Regenerate the last DM reply from the same actions (new narration, new rolls), delivered
        with ``kind="retry"``; the old reply, its table notes and (while the session stays loaded) its
        sheet changes are undone. Creator or admin only. Raises ``NothingToUndo``, ``NotAllowed``,
        ``BudgetExhausted`` or an ``LLMError``; on failure the old reply stays."""
        session = await self._require(where)
        self._require_manager(session, actor, "regenerate the DM's reply")
        calls: list[ChatResult] = []
        player_ids: list[int] = []
        async with session.lock:
            session.busy = True
            try:
                turn, messages = session.last_turn()
                old_dm = [m for m in messages if m.role == "dm"][-1]
                actions = [m for m in messages if m.role == "player"]
                old_notes = [m for m in messages if m.role == "system" and m.id < old_dm.id]
                player_ids = list(dict.fromkeys(a.author_id for a in actions if a.author_id is not None))
                await self.check_budget(session.campaign.guild_id, player_ids)
                snapshot = session._sheets_before.get(turn)
                with_old_reply = {c.id: c for c in session.party}
                await session.restore_turn_sheets(turn)
                before = {c.id: c for c in session.party}
                tools = ToolContext(session.campaign.id, turn, list(session.party), update=session._update_character)
                prompt = session.build_messages(actions, history=[m for m in session.history if m.turn < turn])
                try:
                    async with self.narrator.thinking(session.channel_id):
                        text = await session._converse(prompt, tools, calls)
                except Exception:  # the old reply stays, and with it its sheet changes
                    await session._restore_sheets(with_old_reply)
                    if snapshot:
                        session._sheets_before[turn] = snapshot
                    raise
                stored_notes, dm = await self.store.story.complete_turn(
                    campaign_id=session.campaign.id, turn=turn, action_ids=[], dm_content=text,
                    dm_token_count=self.count(text, session.config.model), rolls=tools.rolls,
                    notes=session._notes(tools), replaces_dm_message_id=old_dm.id,
                    replaces_message_ids=[m.id for m in old_notes])
                gone = {old_dm.id, *(m.id for m in old_notes)}
                at = session.history.index(old_dm)
                kept_before = [m for m in session.history[:at] if m.id not in gone]
                session.history = [*kept_before, *stored_notes, dm, *session.history[at + 1:]]
                session.remember_sheets(turn, before)
                await self.narrator.deliver(DMReply(
                    channel_id=session.channel_id, text=_with_changes(text, tools.changes), turn=turn,
                    rolls=tuple(tools.rolls), answered_message_ids=_platform_ids(actions), kind="retry",
                    campaign_id=session.campaign.id))
            finally:
                session.busy = False
                await self.record_calls(session.campaign, player_ids, "retry", calls)

    async def undo(self, where: ChannelRef, actor: Actor) -> UndoResult:
        """Take back the newest turn: its actions, table notes and reply leave the story (kept in the
        database as "undone"), and, while the session stays loaded, its sheet changes are reverted.
        Creator or admin only. Raises ``NothingToUndo`` or ``NotAllowed``."""
        session = await self._require(where)
        self._require_manager(session, actor, "undo a turn")
        async with session.lock:
            turn, _messages = session.last_turn()
            count = await self.store.story.undo_turn(session.campaign.id, turn)
            await session.restore_turn_sheets(turn)
            session.history = [m for m in session.history if m.turn != turn]
            refreshed = await self.store.campaigns.get(session.campaign.id)
            if refreshed is not None:
                session.campaign = replace(session.campaign, turn=refreshed.turn)
        return UndoResult(turn=turn, messages_undone=count)

    # --- dice ------------------------------------------------------------------------------------
    async def roll(self, where: ChannelRef, actor: Actor, expression: str, reason: str = "") -> RollRecord:
        """Roll for a player with d20 (``1d20+5``, ``4d6kh3``, ``adv 1d20+3``); stored, and noted in the
        story so the DM knows, when the channel has a campaign. Raises ``DiceError`` (a
        ``UserInputError``) for a bad expression."""
        session = await self._session(where.channel_id)
        character = session.character_of(actor.user_id) if session else None
        record = make_roll(expression, reason=reason, roller_id=actor.user_id, roller_name=actor.name[:80],
                           character_name=character.name if character else None,
                           campaign_id=session.campaign.id if session else None,
                           turn=session.campaign.turn if session else None)
        if session is not None:
            record = replace(record, id=await self.store.story.add_roll(record))
            who = character.name if character else actor.name[:80]
            why = f" for {record.reason}" if record.reason else ""
            await self._note(session, f"{who} rolled {record.expression}{why}: {record.total}")
        return record

    # --- admin -----------------------------------------------------------------------------------
    async def get_config(self, guild_id: int) -> GuildConfig:
        """The server's effective options."""
        return await self.config(guild_id)

    async def set_config(self, guild_id: int, actor: Actor, key: str, value: str) -> GuildConfig:
        """Validate and store one server option (``default`` resets it); live sessions of the server
        pick it up at once. Raises ``NotAllowed`` for non-admins and ``UserInputError`` for a bad key
        or value."""
        if not (actor.is_admin or actor.is_owner):
            raise NotAllowed(player_message="Only server admins (Manage Server) can change settings.")
        parsed = parse_config_value(key, value)
        await self.store.guild_config.set(guild_id, key, parsed, updated_by=actor.user_id)
        self._configs.pop(guild_id, None)
        config = await self.config(guild_id)
        for session in self.sessions.values():
            if session.campaign.guild_id == guild_id:
                session.set_config(config)
        log.info("guild %s: %s set to %r by %s", guild_id, key, parsed, actor.user_id)
        return config

    async def usage(self, where: ChannelRef) -> UsageReport:
        """Model usage of the server and the channel's campaign (if any), today (UTC) and all time."""
        session = await self._session(where.channel_id)
        return await self.store.usage.report(
            where.guild_id, session.campaign.id if session else None,
            session.campaign.title if session else None, at=time.time())


def _export_line(m: StoryMessage) -> str:
    if m.role == "dm":
        return f"**DM:** {m.content}"
    if m.role == "system":
        return f"> {m.content}"
    return f"**{m.character_name or m.author_name}:** {m.content}"
