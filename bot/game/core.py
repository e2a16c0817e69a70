"""``Game``: the facade the adapters (Discord cogs, terminal play) call; it implements
``bot.game.api.GameAPI`` by wiring the core's parts together and delegating to them.

A player's message goes: ``handle_message`` -> ``ActionIntake`` (filters, gates, stored) -> the
channel's ``TurnWorker`` (collection window) -> ``TurnPipeline`` (budget, context, converse, check,
commit, deliver, account, remember) -> the adapter's ``Narrator``. Commands go to ``CampaignCommands``,
``PartyCommands``, the pipeline (``retry``) or the store. The parts:

    session.py   GameSession (a channel's state), LiveSession (state + worker + memory + sheets)
    registry.py  SessionRegistry: load, evict, close, drain
    intake.py    ActionIntake         worker.py    TurnWorker          pipeline.py  TurnPipeline
    converse.py  tool rounds          guard.py     the check step      memory.py    MemoryKeeper
    sheets.py    SheetJournal         ledger.py    UsageLedger         notes.py     table notes
    moderation.py  Moderator (the ``moderation`` option: input in intake, output for the pipeline)
    campaign.py  CampaignCommands     party.py     PartyCommands       export.py    recap, export
    lorebook.py  LoreCommands (/lore, search)
    combat_commands.py  CombatCommands (/combat)   tracker.py  the tracker view, refresh_tracker
    combat_tools.py  the model's combat tools (encounter.py: EncounterService, combat.py: the rules)
    configs.py   ServerConfigs        rules.py     sheet limits        options.py   /config values

Permissions: end/pause/resume/undo/retry need the campaign's creator or an admin (``Actor.is_admin``
or ``is_owner``); ``set_config`` needs an admin.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from bot.config import Settings
from bot.game import combat
from bot.game.api import (
    Actor,
    ChannelRef,
    CharacterSheetInput,
    CombatChange,
    IncomingMessage,
    Intake,
    Narrator,
    ReplyKind,
    TrackerView,
    UndoResult,
)
from bot.game.campaign import CampaignCommands, require_manager
from bot.game.combat import Dice
from bot.game.combat_commands import CombatCommands
from bot.game.configs import ServerConfigs
from bot.game.dice import make_roll
from bot.game.encounter import EncounterService
from bot.game.errors import EmptyReply, NotAllowed
from bot.game.intake import ActionIntake
from bot.game.journal_links import JournalLinks
from bot.game.ledger import UsageLedger
from bot.game.lorebook import LoreCommands, LoreEdit
from bot.game.memory import MemoryKeeper
from bot.game.moderation import Moderator
from bot.game.notes import TableNotes, rolls_note
from bot.game.options import parse_config_value
from bot.game.pacing import PaceService
from bot.game.party import PartyCommands
from bot.game.pipeline import TurnPipeline, TurnTiming
from bot.game.ports import LazyTokenCounter, ModelPort, ModerationPort, TokenCounter
from bot.game.registry import SessionRegistry
from bot.game.rules import PLAYER_NAME_MAX
from bot.game.safety import SafetyCommands, SafetyKind
from bot.game.session import GameSession, LiveSession
from bot.game.sheets import SheetJournal
from bot.game.turns import Clock, MonotonicClock
from bot.game.worker import TurnWorker
from bot.models import (
    Campaign,
    CampaignStatusReport,
    Character,
    GuildConfig,
    LoreEntry,
    LoreRevision,
    PaceStatus,
    RollRecord,
    SearchHit,
    StoryMessage,
    TableSafety,
    UsageReport,
)
from bot.store import Store, default_guild_config

log = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 10.0  # how long close() lets a running turn finish
DRAIN_SECONDS = 60.0
RETRY_EMPTY_MESSAGE = "The DM found no new words this time; the old reply stands. Try /retry again later."

__all__ = ["CLOSE_GRACE_SECONDS", "Game"]


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
        dice: how the fight's rules roll for the model's combat tools (``bot.game.combat.Dice``;
            default ``combat.roll``, real d20 dice; tests inject fixed dice).
    """

    def __init__(self, *, store: Store, llm: ModelPort, settings: Settings, narrator: Narrator,
                 clock: Clock | None = None, count_tokens: TokenCounter | None = None,
                 dice: Dice | None = None) -> None:
        self.store = store
        self.llm = llm
        self.settings = settings
        self.narrator = narrator
        self.clock: Clock = clock or MonotonicClock()
        self.count: TokenCounter = count_tokens or LazyTokenCounter()
        self.configs = ServerConfigs(store, default_guild_config(settings))
        self.ledger = UsageLedger(store, self.configs)
        self.moderator = Moderator(llm if isinstance(llm, ModerationPort) else None, self.ledger)
        self.notes = TableNotes(store, self.count)
        self.encounters = EncounterService(store, dice or combat.roll)
        self.pipeline = TurnPipeline(store=store, model=llm, settings=settings, narrator=narrator,
                                     ledger=self.ledger, notes=self.notes, clock=self.clock,
                                     encounters=self.encounters, moderator=self.moderator)
        self.registry = SessionRegistry(store=store, settings=settings, configs=self.configs, clock=self.clock,
                                        assemble=self._assemble, prepare=self._prepare)
        self.pace = PaceService(store=store, registry=self.registry, clock=self.clock, deliver=narrator.deliver)
        self.intake = ActionIntake(store=store, registry=self.registry, configs=self.configs, ledger=self.ledger,
                                   settings=settings, clock=self.clock, count=self.count, moderator=self.moderator,
                                   pace=self.pace)
        self.safety_commands = SafetyCommands(store=store, registry=self.registry, pipeline=self.pipeline)
        self.campaigns = CampaignCommands(store=store, registry=self.registry, configs=self.configs)
        self.party_commands = PartyCommands(store=store, registry=self.registry, notes=self.notes)
        self.lore_commands = LoreCommands(store=store, registry=self.registry, count=self.count)
        self.journal = JournalLinks(store, settings, self.registry)

    def _wake(self, where: ChannelRef) -> None:
        """Let the channel's worker look again (a change may have closed the waiting turn)."""
        live = self.registry.sessions.get(where.channel_id)
        if live is not None:
            live.worker.kick()

    async def _prepare(self, state: GameSession) -> None:
        await self.pace.load(state)

    def _assemble(self, state: GameSession) -> LiveSession:
        """A loaded session's worker, memory keeper and sheet journal."""
        live: LiveSession

        async def play(actions: list[StoryMessage], kind: ReplyKind) -> bool:
            return await self.pipeline.play(live, actions, kind)

        live = LiveSession(state=state, worker=TurnWorker(state, self.clock, play, self.pipeline.notice, self.pace),
                           memory=MemoryKeeper(state, self.store, self.llm, self.ledger, self.settings, self.count),
                           sheets=SheetJournal(state, self.store))
        return live

    @property
    def turn_timings(self) -> deque[TurnTiming]:
        """Where recent turns' time went (the newest 10,000; read by ``python -m bench``)."""
        return self.pipeline.timings

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Answer actions left pending by a previous process (``kind="recovered"``) and start idle
        eviction."""
        await self.registry.start()

    async def close(self, grace_s: float = CLOSE_GRACE_SECONDS) -> None:
        """Cancel background work and close every session; running turns get up to ``grace_s``
        seconds to finish (their actions stay pending otherwise)."""
        await self.registry.close(grace_s)

    async def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait (real time, at most ``timeout`` seconds) until no session has actions to answer, a
        turn or a fold running; actions whose turn failed do not count. Returns False on timeout."""
        return await self.registry.drain(timeout)

    # --- play ------------------------------------------------------------------------------------
    async def handle_message(self, msg: IncomingMessage) -> Intake:
        """Filter, store (commit) and queue a message; see ``GameAPI.handle_message``."""
        return await self.intake.handle(msg)

    # --- campaign --------------------------------------------------------------------------------
    async def start_campaign(self, where: ChannelRef, actor: Actor, *, title: str, setting: str = "",
                             tone: str = "") -> Campaign:
        """See ``CampaignCommands.start``."""
        return await self.campaigns.start(where, actor, title=title, setting=setting, tone=tone)

    async def end_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """End the channel's campaign (creator or admin). Raises ``NoCampaign`` or ``NotAllowed``."""
        return await self.campaigns.set_status(where, actor, "ended")

    async def pause_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """Pause: messages are ignored until resumed (creator or admin). Raises ``NoCampaign``,
        ``NotAllowed`` or ``CampaignNotActive``."""
        return await self.campaigns.set_status(where, actor, "paused")

    async def resume_campaign(self, where: ChannelRef, actor: Actor) -> Campaign:
        """Resume a paused campaign; waiting actions are answered at once (creator or admin)."""
        return await self.campaigns.set_status(where, actor, "active")

    async def status(self, where: ChannelRef) -> CampaignStatusReport:
        """See ``CampaignCommands.status``; with the pace (``PaceService.status``)."""
        report = await self.campaigns.status(where)
        live = await self.registry.get(where.channel_id)
        return replace(report, pace=self.pace.status(live.state)) if live is not None else report

    async def set_pace(self, where: ChannelRef, actor: Actor, *, pace: str | None = None,
                       deadline_hours: float | None = None, reminder_share: float | None = None) -> PaceStatus:
        """See ``PaceService.set_pace``."""
        return await self.pace.set_pace(where, actor, pace=pace, deadline_hours=deadline_hours,
                                        reminder_share=reminder_share)

    async def away(self, where: ChannelRef, actor: Actor) -> bool:
        """See ``PaceService.away``."""
        return await self.pace.away(where, actor)

    async def reminders(self, where: ChannelRef, actor: Actor, *, ping: bool) -> bool:
        """See ``PaceService.reminders``."""
        return await self.pace.reminders(where, actor, ping=ping)

    async def recap(self, where: ChannelRef, chapter: int | None = None) -> str:
        """See ``CampaignCommands.recap`` (the latest chapter and turns, or chapter ``chapter``)."""
        return await self.campaigns.recap(where, chapter)

    async def export_markdown(self, where: ChannelRef, actor: Actor | None = None, *,
                              include_secrets: bool = False) -> str:
        """See ``CampaignCommands.export_markdown`` (secrets for the creator's or an admin's export)."""
        return await self.campaigns.export_markdown(where, actor, include_secrets=include_secrets)

    # --- party -----------------------------------------------------------------------------------
    async def join(self, where: ChannelRef, actor: Actor, sheet: CharacterSheetInput) -> Character:
        """See ``PartyCommands.join``; the new character counts as active in rounds from now."""
        character = await self.party_commands.join(where.channel_id, actor, sheet)
        live = await self.registry.get(where.channel_id)
        if live is not None:
            await self.pace.joined(live.state, actor.user_id)
        return character

    async def character(self, where: ChannelRef, *, user_id: int | None = None,
                        name: str | None = None) -> Character:
        """See ``PartyCommands.character``."""
        return await self.party_commands.character(where.channel_id, user_id=user_id, name=name)

    async def edit_character(self, where: ChannelRef, actor: Actor, **changes: object) -> Character:
        """See ``PartyCommands.edit``."""
        return await self.party_commands.edit(where.channel_id, actor, changes)

    async def leave(self, where: ChannelRef, actor: Actor) -> Character:
        """See ``PartyCommands.leave``; a round stops waiting for that character."""
        character = await self.party_commands.leave(where.channel_id, actor)
        self._wake(where)
        return character

    async def party(self, where: ChannelRef) -> Sequence[Character]:
        """The active characters in joining order. Raises ``NoCampaign``."""
        return await self.party_commands.members(where.channel_id)

    async def character_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """For autocomplete: active character names starting with ``prefix``."""
        return await self.party_commands.names(where.channel_id, prefix)

    # --- turns -----------------------------------------------------------------------------------
    async def retry(self, where: ChannelRef, actor: Actor) -> None:
        """Regenerate the last DM reply from the same actions (new narration, new rolls), delivered
        with ``kind="retry"``; the old reply, its table notes and (while the session stays loaded) its
        sheet changes are undone. Creator or admin only. Raises ``NothingToUndo``, ``NotAllowed``,
        ``BudgetExhausted``, ``EmptyReply`` or an ``LLMError``; on failure the old reply stays."""
        live = await self.registry.require(where.channel_id)
        require_manager(live.state, actor, "regenerate the DM's reply")
        try:
            await self.pipeline.retry(live)
        except EmptyReply as exc:
            raise EmptyReply(player_message=RETRY_EMPTY_MESSAGE) from exc

    async def undo(self, where: ChannelRef, actor: Actor) -> UndoResult:
        """Take back the newest turn: its actions, table notes and reply leave the story (kept in the
        database as "undone"), what the DM's lore tools recorded in it is taken back (entries it created
        leave the lorebook, entries it changed return to their previous revision), and, while the
        session stays loaded, its sheet changes are reverted; the running fight returns to its state
        before the turn (a monster the turn killed stands again). Creator or admin only. Raises
        ``NothingToUndo`` or ``NotAllowed``."""
        live = await self.registry.require(where.channel_id)
        session = live.state
        require_manager(session, actor, "undo a turn")
        async with session.lock:
            turn = session.last_turn().turn
            count = await self.store.story.undo_turn(session.campaign.id, turn)
            if await self.store.lore.undo_turn(session.campaign.id, turn):
                session.set_lore(await self.store.lore.live(session.campaign.id))
            await self.encounters.restore(session, turn)  # the fight as it was before the turn
            before = live.sheets.take(turn)
            if before:
                await live.sheets.restore(before)
            refreshed = await self.store.campaigns.get(session.campaign.id)
            session.undone(turn, refreshed.turn if refreshed is not None else session.campaign.turn)
        return UndoResult(turn=turn, messages_undone=count)

    # --- dice ------------------------------------------------------------------------------------
    async def roll(self, where: ChannelRef, actor: Actor, expression: str, reason: str = "") -> RollRecord:
        """Roll for a player with d20 (``1d20+5``, ``4d6kh3``, ``adv 1d20+3``); stored, and noted in the
        story so the DM knows, when the channel has a campaign. Raises ``DiceError`` (a
        ``UserInputError``) for a bad expression."""
        live = await self.registry.get(where.channel_id)
        session = live.state if live is not None else None
        character = session.character_of(actor.user_id) if session else None
        record = make_roll(expression, reason=reason, roller_id=actor.user_id,
                           roller_name=actor.name[:PLAYER_NAME_MAX],
                           character_name=character.name if character else None,
                           campaign_id=session.campaign.id if session else None,
                           turn=session.campaign.turn if session else None)
        if session is not None:
            record = replace(record, id=await self.store.story.add_roll(record))
            await self.notes.add(session, rolls_note([record]))
        return record

    # --- admin -----------------------------------------------------------------------------------
    async def get_config(self, guild_id: int) -> GuildConfig:
        """The server's effective options."""
        return await self.configs.get(guild_id)

    async def set_config(self, guild_id: int, actor: Actor, key: str, value: str) -> GuildConfig:
        """Validate and store one server option (``default`` resets it); live sessions of the server
        pick it up at once. Raises ``NotAllowed`` for non-admins and ``UserInputError`` for a bad key
        or value."""
        if not (actor.is_admin or actor.is_owner):
            raise NotAllowed(player_message="Only server admins (Manage Server) can change settings.")
        parsed = parse_config_value(key, value)
        if key == "moderation" and parsed:
            await self.moderator.probe()  # refuses (ModerationUnavailable) when the endpoint has none
        await self.store.guild_config.set(guild_id, key, parsed, updated_by=actor.user_id)
        self.configs.forget(guild_id)
        config = await self.configs.get(guild_id)
        for live in self.registry.sessions.values():
            if live.state.campaign.guild_id == guild_id:
                live.state.set_config(config)
                live.worker.kick()  # a shorter window may already be over (and drain sees it quiet)
        log.info("guild %s: %s set to %r by %s", guild_id, key, parsed, actor.user_id)
        return config

    async def usage(self, where: ChannelRef) -> UsageReport:
        """Model usage of the server and the channel's campaign (if any), today (UTC) and all time."""
        live = await self.registry.get(where.channel_id)
        return await self.ledger.report(where.guild_id, live.state.campaign if live else None)

    # --- lorebook and search (the table's side; see bot.game.lorebook) --------------------------
    async def lore_show(self, where: ChannelRef, actor: Actor, name: str, *, for_table: bool = False) -> LoreEntry:
        """See ``LoreCommands.show``."""
        return await self.lore_commands.show(where.channel_id, actor, name, for_table=for_table)

    async def lore_list(self, where: ChannelRef, actor: Actor, *, kind: str | None = None,
                        status: str | None = None, for_table: bool = False) -> Sequence[LoreEntry]:
        """See ``LoreCommands.entries``."""
        return await self.lore_commands.entries(where.channel_id, actor, kind=kind, status=status,
                                                for_table=for_table)

    async def lore_names(self, where: ChannelRef, actor: Actor, prefix: str = "") -> list[str]:
        """See ``LoreCommands.names``."""
        return await self.lore_commands.names(where.channel_id, actor, prefix)

    async def lore_add(self, where: ChannelRef, actor: Actor, *, kind: str, name: str,
                       aliases: Sequence[str] = (), description: str = "", secret: bool = False,
                       status: str | None = None) -> LoreEntry:
        """See ``LoreCommands.add``."""
        return await self.lore_commands.add(where.channel_id, actor, kind=kind, name=name, aliases=aliases,
                                            description=description, secret=secret, status=status)

    async def lore_edit(self, where: ChannelRef, actor: Actor, name: str, edit: LoreEdit) -> LoreEntry:
        """See ``LoreCommands.edit``."""
        return await self.lore_commands.edit(where.channel_id, actor, name, edit)

    async def lore_forget(self, where: ChannelRef, actor: Actor, name: str) -> LoreEntry:
        """See ``LoreCommands.forget``."""
        return await self.lore_commands.forget(where.channel_id, actor, name)

    async def lore_pin(self, where: ChannelRef, actor: Actor, name: str, pinned: bool = True) -> LoreEntry:
        """See ``LoreCommands.pin``."""
        return await self.lore_commands.pin(where.channel_id, actor, name, pinned)

    async def lore_history(self, where: ChannelRef, actor: Actor,
                           name: str) -> tuple[LoreEntry, Sequence[LoreRevision]]:
        """See ``LoreCommands.history``."""
        return await self.lore_commands.history(where.channel_id, actor, name)

    async def lore_revert(self, where: ChannelRef, actor: Actor, name: str, revision_id: int) -> LoreEntry:
        """See ``LoreCommands.revert``."""
        return await self.lore_commands.revert(where.channel_id, actor, name, revision_id)

    async def search(self, where: ChannelRef, actor: Actor, query: str, *,
                     for_table: bool = False) -> Sequence[SearchHit]:
        """See ``LoreCommands.search``."""
        return await self.lore_commands.search(where.channel_id, actor, query, for_table=for_table)

    # --- combat (the table's side; the model's tools are in combat_tools.py) ----------------------
    @property
    def combat_commands(self) -> CombatCommands:
        """The ``/combat`` commands (built on first use; tests may replace it)."""
        commands = self.__dict__.get("_combat_commands")
        if commands is None:
            commands = CombatCommands(store=self.store, registry=self.registry, narrator=self.narrator)
            self.__dict__["_combat_commands"] = commands
        return commands

    @combat_commands.setter
    def combat_commands(self, commands: CombatCommands) -> None:
        self.__dict__["_combat_commands"] = commands

    async def combat_show(self, where: ChannelRef) -> TrackerView:
        """See ``CombatCommands.show``."""
        return await self.combat_commands.show(where.channel_id)

    async def combat_next(self, where: ChannelRef, actor: Actor) -> CombatChange:
        """See ``CombatCommands.next_turn``."""
        change = await self.combat_commands.next_turn(where.channel_id, actor)
        self._wake(where)  # the spotlight may have moved: a waiting turn may close
        return change

    async def combat_add(self, where: ChannelRef, actor: Actor, name: str, count: int = 1, *,
                         hp: int | None = None, ac: int | None = None) -> CombatChange:
        """See ``CombatCommands.add``."""
        change = await self.combat_commands.add(where.channel_id, actor, name, count, hp=hp, ac=ac)
        self._wake(where)  # the spotlight may have moved: a waiting turn may close
        return change

    async def combat_remove(self, where: ChannelRef, actor: Actor, name: str) -> CombatChange:
        """See ``CombatCommands.remove``."""
        change = await self.combat_commands.remove(where.channel_id, actor, name)
        self._wake(where)  # the spotlight may have moved: a waiting turn may close
        return change

    async def combat_end(self, where: ChannelRef, actor: Actor) -> CombatChange:
        """See ``CombatCommands.end``."""
        change = await self.combat_commands.end(where.channel_id, actor)
        self._wake(where)  # the spotlight may have moved: a waiting turn may close
        return change

    async def combat_init(self, where: ChannelRef, actor: Actor, roll: int | None = None) -> CombatChange:
        """See ``CombatCommands.initiative``."""
        change = await self.combat_commands.initiative(where.channel_id, actor, roll)
        self._wake(where)  # the spotlight may have moved: a waiting turn may close
        return change

    async def combat_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """See ``CombatCommands.combatant_names``."""
        return await self.combat_commands.combatant_names(where.channel_id, prefix)

    async def combat_addable(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """See ``CombatCommands.addable_names``."""
        return await self.combat_commands.addable_names(where.channel_id, prefix)

    # --- table safety ----------------------------------------------------------------------------
    async def safety_show(self, where: ChannelRef) -> TableSafety:
        """The campaign's lines, veils and X-card count. Raises ``NoCampaign``."""
        return await self.safety_commands.show(where.channel_id)

    async def safety_change(self, where: ChannelRef, actor: Actor, kind: SafetyKind, topic: str, *,
                            remove: bool = False) -> TableSafety:
        """Add or remove a line or a veil (creator or admin). See ``SafetyCommands.change``."""
        return await self.safety_commands.change(where.channel_id, actor, kind, topic, remove=remove)

    async def xcard(self, where: ChannelRef, what: str = "") -> None:
        """Anyone, anonymously: the DM's last reply is rewritten without ``what``. See
        ``SafetyCommands.xcard``."""
        await self.safety_commands.xcard(where.channel_id, what)

    # --- edits and deletions of pending actions (bot.game.intake) --------------------------------
    async def handle_edit(self, msg: IncomingMessage) -> Intake:
        """See ``ActionIntake.edit``."""
        return await self.intake.edit(msg)

    async def handle_delete(self, channel_id: int, message_id: int) -> Intake:
        """See ``ActionIntake.withdraw``."""
        return await self.intake.withdraw(channel_id, message_id)

    # --- the journal (bot.game.journal_links) ----------------------------------------------------
    async def journal_link(self, where: ChannelRef, actor: Actor) -> str:
        """See ``JournalLinks.campaign_link``."""
        return await self.journal.campaign_link(where.channel_id, actor)

    async def journal_revoke(self, where: ChannelRef, actor: Actor) -> int:
        """See ``JournalLinks.revoke``."""
        return await self.journal.revoke(where.channel_id, actor)

    async def usage_link(self, guild_id: int, actor: Actor, *, revoke_old: bool = False) -> str:
        """See ``JournalLinks.usage_link``."""
        return await self.journal.usage_link(guild_id, actor, revoke_old=revoke_old)
