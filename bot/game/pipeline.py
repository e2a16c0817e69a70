"""The turn pipeline: the ONE sequence of steps that answers the table, shared by a turn, a
recovered turn after a restart and ``/retry``.

    budget    the server's and the players' daily token budgets       (bot.game.ledger)
    opening   "Previously..." after a long break, from the chronicle      (bot.game.chronicle)
    context   the prompt: cached system text, sticky history, party, the fight, lore, actions
              (bot.game.context, bot.game.lore; the model's lore tools are bot.game.lore_tools)
    converse  the model's tool rounds, then its narration                 (bot.game.converse)
              the narration streams to the table as it is written, through the guard
              (bot.game.streaming), unless streaming is off or moderation is on
    check     the narration is usable; an empty one is asked for again once  (bot.game.guard)
    fight     the encounter the combat tools changed is stored, with its state before the turn
              (bot.game.combat_tools, bot.game.encounter)
    commit    one transaction: the reply, table notes, rolls, turn number (bot.store.story)
    deliver   the Narrator port shows it (Discord or the terminal)        (bot.game.api.Narrator)
    named     the lorebook entries the turn named are marked with its number  (bot.game.lore)
    account   usage rows, failed turn or not                              (bot.game.ledger)
    remember  maybe fold old story into a chapter, in the background     (bot.game.memory)

A failure before the commit changes nothing that stays: sheet changes the model's tools made are put
back, and so are its lorebook changes (not in a retry: there the changes stay, the old reply's and the
retry's) and its encounter changes (a retry first puts the fight back as it was before the replaced
turn, and on failure as the replaced turn left it), the actions stay pending (a retry keeps the old
reply), and the error propagates as a ``BotError`` (``play`` turns it into a notice to the table). A
new step is one function here and, where it has state, one module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.errors import BotError
from bot.game import chronicle, guard
from bot.game.api import DMReply, Narrator, ReplyKind
from bot.game.combat import Encounter
from bot.game.combat_tools import CombatTools, sync_fight
from bot.game.context import build_prompt, encounter_block
from bot.game.converse import Conversation, converse, without_tool_rounds
from bot.game.encounter import EncounterService
from bot.game.errors import (
    FAILED_TURN_NOTICE,
    LOST_THREAD,
    RETRY_KEPT,
    STOPPED_MID_REPLY,
    EmptyReply,
    ModeratedOutput,
)
from bot.game.guard_step import GuardStep
from bot.game.ledger import UsageLedger
from bot.game.lore import RECENT_MESSAGES, LoreRecall, unknown_names
from bot.game.lore_tools import LoreTools
from bot.game.moderation import MODERATED_OUTPUT_NOTICE, Moderator
from bot.game.notes import TableNotes, changes_note, rolls_note, with_changes
from bot.game.ports import ModelPort
from bot.game.session import GameSession, LastTurn, LiveSession
from bot.game.streaming import NarrationStream
from bot.game.tools import ToolContext
from bot.game.tracker import refresh_tracker
from bot.game.turns import Clock
from bot.models import StoryMessage
from bot.store import Store

log = logging.getLogger(__name__)

ABANDON_SECONDS = 5.0  # the longest a failed turn waits to turn its streamed message into the notice


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


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One answer to give the table.

    Attributes:
        actions: the actions answered, oldest first.
        kind: "turn", "recovered" (left by a previous process) or "retry".
        replacing: for a retry, the newest turn whose reply is regenerated.
        note: a table note for the model added to the turn's last message (the X-card's request).
    """

    actions: tuple[StoryMessage, ...]
    kind: ReplyKind
    replacing: LastTurn | None = None
    note: str = ""

    @property
    def player_ids(self) -> list[int]:
        """The players whose actions are answered, in order of first action (for budgets, usage)."""
        return list(dict.fromkeys(a.author_id for a in self.actions if a.author_id is not None))


class TurnPipeline:
    """Runs ``TurnRequest``s through the steps listed in the module docstring.

    Args:
        store: the database.
        model: the model client.
        settings: ``history_token_budget`` (tokens) and ``max_tool_rounds``.
        narrator: where replies go.
        ledger: budgets and usage.
        notes: table notes and token counts.
        clock: time source for the session's last activity.
        encounters: the fight's rules and storage (default ``EncounterService(store)``, real dice).
    """

    def __init__(self, *, store: Store, model: ModelPort, settings: Settings, narrator: Narrator,
                 ledger: UsageLedger, notes: TableNotes, clock: Clock,
                 encounters: EncounterService | None = None, moderator: Moderator | None = None) -> None:
        self.store = store
        self.moderator = moderator
        self.model = model
        self.settings = settings
        self.narrator = narrator
        self.ledger = ledger
        self.notes = notes
        self.clock = clock
        self.timings: deque[TurnTiming] = deque(maxlen=10_000)
        self.guard = GuardStep(store, settings)
        self.lore = LoreRecall()
        self.encounters = encounters or EncounterService(store)

    async def play(self, live: LiveSession, actions: Sequence[StoryMessage], kind: ReplyKind) -> bool:
        """Answer pending ``actions`` (the worker's entry). Returns True when the reply was stored
        and delivered; an expected failure (``BotError``: model trouble, a spent budget, an empty
        reply) becomes a notice to the table and returns False with the actions still pending.
        Anything else propagates (the worker logs it), unless a streamed reply was already turned
        into the notice (then it is logged here and False returned)."""
        talk = Conversation()
        try:
            await self.run(live, TurnRequest(tuple(actions), kind), talk)
        except BotError as exc:
            log.warning("turn in channel %s not answered: %s (status %s, request %s)", live.state.channel_id,
                        type(exc).__name__, getattr(exc, "status", None), getattr(exc, "request_id", None))
            if not talk.told:
                await self.notice(live.state.channel_id, exc.player_message)
            return False
        except Exception:
            if not talk.told:
                raise
            log.exception("turn in channel %s failed", live.state.channel_id)
            return False
        return True

    async def retry(self, live: LiveSession, note: str = "") -> None:
        """Regenerate the newest turn's reply from the same actions (with ``note`` for the model,
        e.g. the X-card's); which turn that is is decided under the session's lock, after any
        running turn or undo. Raises ``NothingToUndo`` and any ``BotError`` of the run (the old
        reply then stays)."""
        await self.run(live, TurnRequest((), "retry", note=note))

    async def notice(self, channel_id: int, text: str) -> None:
        """Tell a channel something as the table's DM (errors, budgets): ``DMReply(kind="notice")``."""
        await self.narrator.deliver(DMReply(channel_id=channel_id, text=text, kind="notice"))

    async def run(self, live: LiveSession, request: TurnRequest, talk: Conversation | None = None) -> None:
        """Run every step for ``request`` under the session's lock (a "retry" request names no
        actions: it answers the newest turn as it stands once the lock is held). Raises ``BotError``
        (nothing committed; sheets put back) or, for a bug, anything else (likewise); a reply that was
        being streamed is then replaced by the notice (``talk.told``)."""
        session = live.state
        closed_at = time.perf_counter()
        talk = talk if talk is not None else Conversation()
        async with session.lock:
            if request.kind == "retry" and request.replacing is None:
                last = session.last_turn()  # raises NothingToUndo
                request = TurnRequest(last.actions, "retry", replacing=last, note=request.note)
            session.busy = True
            fight_version = session.encounter_version
            try:
                opening = await self.previously(session, request)
                at_start = live.sheets.snapshot()
                replaced_sheets = (live.sheets.take(request.replacing.turn)
                                   if request.replacing is not None else None)
                lore: LoreTools | None = None
                fight: CombatTools | None = None
                narration: NarrationStream | None = None
                replaced_fight = session.encounter  # as the replaced turn left it (a retry)
                fight_restored = False
                try:
                    await self.ledger.check_budget(session.campaign.guild_id, request.player_ids)
                    if replaced_sheets:
                        await live.sheets.restore(replaced_sheets)
                    if request.replacing is not None:  # the fight as it was before the replaced turn
                        fight_restored = await self.encounters.restore(session, request.replacing.turn)
                    before = live.sheets.snapshot()
                    live.sheets.begin_turn()
                    turn = request.replacing.turn if request.replacing else session.campaign.turn + 1
                    lore = LoreTools(self.store, session, turn, self.counter(session))
                    fight = CombatTools(self.encounters, session, live.sheets, turn)
                    tools = ToolContext(session.campaign.id, turn, list(session.party), update=live.sheets.update,
                                        lore=lore, combat=fight)
                    prompt = self.context(session, request, await self.chapter_recall(session, request))
                    narration = self.narration(session, request, turn, tools, opening)
                    text = await self.converse(session, prompt, tools, talk, request.player_ids, narration)
                    await fight.save()
                    await live.sheets.flush()
                    notes, dm = await self.commit(session, request, turn, text, tools)
                except BaseException as exc:  # a cancelled turn (shutdown) puts its sheets back too
                    if narration is not None and narration.opened:  # nothing half-written stays shown
                        talk.told = await self.abandon(session, narration, exc)
                    live.sheets.discard()
                    if request.replacing is None and lore is not None:  # and its lorebook changes
                        with contextlib.suppress(Exception):
                            await lore.take_back()
                    with contextlib.suppress(Exception):  # and its encounter changes
                        await self.put_back_fight(session, request, fight, replaced_fight, fight_restored)
                    if request.replacing is not None:
                        live.sheets.put_back(request.replacing.turn, replaced_sheets)
                    with contextlib.suppress(Exception):
                        await live.sheets.restore(at_start)
                    raise
                if request.replacing is None:
                    session.answered(request.actions, turn, notes, dm)
                else:
                    session.replaced(request.replacing, notes, dm)
                live.sheets.record(turn, before)
                session.last_active = self.clock.now()
                self.timings.append(TurnTiming(session.channel_id, turn, closed_at, time.perf_counter(),
                                               talk.model_s, len(prompt)))
                await self.deliver(session, request, turn, text, tools, opening, narration)
                await self.mark_named(session, turn, [*(a.content for a in request.actions), text])
                if session.encounter_version != fight_version:  # the tracker message follows, once a turn
                    await self.show_tracker(session)
            finally:
                session.busy = False
                await self.ledger.record(session.campaign, request.player_ids,
                                         "retry" if request.kind == "retry" else "turn", talk.calls)
        live.memory.maybe_fold()

    async def show_tracker(self, session: GameSession) -> None:
        """Post or edit the channel's tracker message after a turn changed the fight; a failure is
        logged (the reply is already out)."""
        try:
            await refresh_tracker(self.narrator, self.store, session)
        except Exception:
            log.exception("channel %s: updating the combat tracker failed", session.channel_id)

    async def put_back_fight(self, session: GameSession, request: TurnRequest, fight: CombatTools | None,
                             replaced: Encounter | None, restored: bool) -> None:
        """After a failed turn: the encounter as it was before it. A new turn's stored change is
        restored; a retry's fight goes back to how the ``replaced`` turn left it, keeping the state
        before that turn for a later undo (``restored``: the retry had put that state back)."""
        saved = fight is not None and fight.saved
        if request.replacing is None:
            if saved and fight is not None:
                await self.encounters.restore(session, fight.turn)
        elif restored:
            await self.encounters.save(session, replaced, request.replacing.turn)
        elif saved:
            await self.encounters.restore(session, request.replacing.turn)

    # --- the steps ---------------------------------------------------------------------------------
    def counter(self, session: GameSession) -> Callable[[str], int]:
        """``text -> tokens`` for the session's model (the game's token counter)."""
        model = session.config.model
        return lambda text: self.notes.count(text, model)

    async def mark_named(self, session: GameSession, turn: int, texts: Sequence[str]) -> None:
        """After a commit: record (one query) that the lorebook entries named in ``texts`` (the
        turn's actions and reply) were named in ``turn``. A failure is logged; the turn stands."""
        try:
            ids = self.lore.mark(session, turn, texts)
            if ids:
                await self.store.lore.mark_named(ids, turn)
        except Exception:
            log.exception("channel %s: could not record the lore named in turn %s", session.channel_id, turn)

    async def chapter_recall(self, session: GameSession, request: TurnRequest) -> list[str]:
        """Lines for the lore block about names in the actions that no lore entry covers but an
        old chapter does: the best chapter's excerpt around each (at most ``UNKNOWN_NAMES_MAX``)."""
        if not self.settings.lore_token_budget or not request.actions:
            return []
        names = unknown_names([a.content for a in request.actions], self.lore.matcher(session),
                              [c.name for c in session.party])
        lines = []
        for name in names:
            found = await self.store.search.chapter_excerpt(session.campaign.id, name)
            if found is not None:
                lines.append(f"- {name}, in chapter {found[0]}: {found[1]}")
        return lines

    def context(self, session: GameSession, request: TurnRequest, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The prompt: the story before the answered turn, within the history budget, with the lore
        the turn's actions and latest story name (``lore_token_budget`` tokens at most) and
        ``extra`` lines (chapter excerpts) where room is left."""
        history = session.history
        if request.replacing is not None:
            history = [m for m in history if m.turn < request.replacing.turn]
        window = session.window.select(history, self.settings.history_token_budget)
        recent = [m.content for m in history[-RECENT_MESSAGES:]]
        lore = self.lore.choose(session, [a.content for a in request.actions], recent,
                                budget=self.settings.lore_token_budget, count=self.counter(session), extra=extra)
        fight = ""
        if session.encounter is not None:
            synced = sync_fight(self.encounters, session.encounter, session.party)
            fight = encounter_block(synced, {a.author_id for a in request.actions if a.author_id is not None})
        prompt = build_prompt(session.system_text(), window, session.party_text(), request.actions, lore=lore.text,
                              encounter=fight)
        if request.note:
            last = dict(prompt[-1])
            last["content"] = f"{last['content']}\n\n[Table]: {request.note}"
            prompt[-1] = last
        return prompt

    def narration(self, session: GameSession, request: TurnRequest, turn: int, tools: ToolContext,
                  opening: str) -> NarrationStream | None:
        """The streamed narration of this turn (``bot.game.streaming``), or None for a whole reply:
        when ``STREAM_REPLIES`` or the server's ``stream_replies`` is off, and while the server's
        moderation is on (a reply is moderated before anyone reads it)."""
        if not (self.settings.stream_replies and session.config.stream_replies) or session.config.moderation:
            return None
        head = DMReply(channel_id=session.channel_id, text="", turn=turn, campaign_id=session.campaign.id,
                       kind=request.kind, answered_message_ids=self.answered_ids(request))
        return NarrationStream(self.narrator, head, self.guard.context(session), rolls=lambda: tools.rolls,
                               opening=opening)

    async def abandon(self, session: GameSession, narration: NarrationStream, exc: BaseException) -> bool:
        """A turn failed after its narration was shown: the shown message becomes the notice (the
        DM lost the thread, and why). True when the table was told. Never raises; bounded by
        ``ABANDON_SECONDS`` (it also runs while the bot shuts down)."""
        if narration.head.kind == "retry":
            why = RETRY_KEPT  # a failed retry changes nothing: the old reply stands
        elif isinstance(exc, BotError):
            why = exc.player_message
        elif isinstance(exc, asyncio.CancelledError):
            why = STOPPED_MID_REPLY
        else:
            why = FAILED_TURN_NOTICE
        try:
            async with asyncio.timeout(ABANDON_SECONDS):
                return await narration.abandon(f"{LOST_THREAD} {why}")
        except (Exception, asyncio.CancelledError):
            log.warning("channel %s: could not take back a streamed reply", session.channel_id, exc_info=True)
            return False

    async def converse(self, session: GameSession, prompt: list[dict[str, Any]], tools: ToolContext,
                       talk: Conversation, player_ids: Sequence[int] = (),
                       narration: NarrationStream | None = None) -> str:
        """The model's tool rounds and narration, checked (``check``); a narration that cannot be
        shown is asked for once more with a corrective note (a streamed one is taken back first).
        Raises ``EmptyReply`` (guard) or ``ModeratedOutput`` (moderation) when the second cannot be
        shown either, or an ``LLMError``."""
        rounds = self.settings.max_tool_rounds
        async with self.narrator.thinking(session.channel_id):
            text = await converse(self.model, prompt, tools, session.config, rounds=rounds, conversation=talk,
                                  narration=narration)
            shown, why = await self.check(session, text, player_ids)
            if shown is None:
                log.info("channel %s: the narration could not be shown (%s); asking once more", session.channel_id,
                         type(why).__name__)
                if narration is not None:
                    await narration.reset()
                base = without_tool_rounds(prompt, tools) if tools.calls else prompt
                again = await converse(self.model, guard.corrected(base), tools, session.config, rounds=0,
                                       conversation=talk, narration=narration)
                shown, why = await self.check(session, again, player_ids)
        if shown is None:
            raise why or EmptyReply()
        return shown

    async def check(self, session: GameSession, text: str, player_ids: Sequence[int] = ()
                    ) -> tuple[str | None, BotError | None]:
        """The check step: the guard, then moderation when the server turned it on. Returns the text
        to show, or None and the error that tells the table why it cannot be."""
        verdict = self.guard.check(session, text)
        await self.guard.record(session, verdict.interventions)
        if verdict.failed:
            return None, EmptyReply()
        if self.moderator is not None:
            moderated = await self.moderator.check_output(session.config, session.campaign, verdict.text,
                                                          player_ids=player_ids, lines=session.safety.lines)
            if not moderated.allowed:
                await self.guard.record(session, ["moderated"])
                return None, ModeratedOutput(player_message=MODERATED_OUTPUT_NOTICE)
        return verdict.text, None

    async def commit(self, session: GameSession, request: TurnRequest, turn: int, text: str,
                     tools: ToolContext) -> tuple[list[StoryMessage], StoryMessage]:
        """One transaction: the actions answered (or the old reply replaced), the table notes, the
        rolls, the reply and the campaign's turn counter. Returns the stored notes and reply (the
        session's memory follows them once this returns)."""
        model = session.config.model
        texts = ([rolls_note(tools.rolls)] if tools.rolls else []) + ([changes_note(tools.changes)]
                                                                      if tools.changes else [])
        last = request.replacing
        notes, dm = await self.store.story.complete_turn(
            campaign_id=session.campaign.id, turn=turn,
            action_ids=[] if last else [a.id for a in request.actions], dm_content=text,
            dm_token_count=self.notes.count(text, model), rolls=tools.rolls,
            notes=self.notes.counted(texts, model), replaces_dm_message_id=last.dm.id if last else None,
            replaces_message_ids=[m.id for m in last.notes] if last else [])
        return notes, dm

    async def previously(self, session: GameSession, request: TurnRequest) -> str:
        """The "Previously..." opening when the table comes back after ``recap_after_hours`` without
        play (the first action's time against the last DM reply's), else "". No model call: the
        latest chapter and the open quests (``bot.game.chronicle.previously``)."""
        hours = self.settings.recap_after_hours
        if not hours or request.kind == "retry" or not request.actions:
            return ""
        last_reply = next((m.created_at for m in reversed(session.history) if m.role == "dm"), None)
        latest = await self.store.chapters.latest(session.campaign.id) if last_reply is None else []
        if last_reply is None and latest:
            last_reply = latest[-1].ended_at
        if last_reply is None or request.actions[0].created_at - last_reply < hours * 3600:
            return ""
        latest = latest or await self.store.chapters.latest(session.campaign.id)
        return chronicle.previously(latest[-1] if latest else None, session.lore)

    @staticmethod
    def answered_ids(request: TurnRequest) -> tuple[int, ...]:
        """Platform message ids of the actions a reply answers (Discord replies to the last)."""
        return tuple(a.platform_message_id for a in request.actions if a.platform_message_id is not None)

    async def deliver(self, session: GameSession, request: TurnRequest, turn: int, text: str,
                      tools: ToolContext, opening: str = "", narration: NarrationStream | None = None) -> None:
        """Hand the reply to the narrator, with its rolls, the sheet changes line and, after a long
        break, the "Previously..." opening (shown, not stored: the story keeps the narration). A
        streamed reply is finished in place (its messages edited to exactly this)."""
        shown = with_changes(text, tools.changes)
        reply = DMReply(channel_id=session.channel_id, text=f"{opening}\n\n{shown}" if opening else shown, turn=turn,
                        rolls=tuple(tools.rolls), campaign_id=session.campaign.id, kind=request.kind,
                        answered_message_ids=self.answered_ids(request))
        # shielded: the reply is stored; a shutdown now must not leave its messages half-written
        if narration is None or not await asyncio.shield(narration.finish(reply)):
            await self.narrator.deliver(reply)
