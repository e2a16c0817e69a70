"""The working memory of one channel's campaign: state only, no I/O, no tasks.

``GameSession`` holds what a turn needs without reading the database: the campaign, the server's
options, the party, the running summary, the unsummarised story (``StoryMessage`` with token counts
stored at insert time), the pending actions, the turn collector and the cached prompt parts. It is
loaded ONCE by the session registry; the turn pipeline, the intake and the commands change it through
the methods below, always under ``lock`` when a turn could be running.

``LiveSession`` bundles a loaded session with the objects that act on it: its turn worker, its
memory keeper and its sheet journal. The registry builds one per channel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.game import context as ctxmod
from bot.game.api import IncomingMessage
from bot.game.errors import NothingToUndo
from bot.game.pace import TablePace, acted, waiting_for
from bot.game.turns import TurnCollector
from bot.models import Campaign, Character, GuildConfig, LoreEntry, StoryMessage, Summary, TableSafety

if TYPE_CHECKING:
    from bot.game.combat import Encounter
    from bot.game.memory import MemoryKeeper
    from bot.game.sheets import SheetJournal
    from bot.game.worker import TurnWorker

RECENT_IDS = 256  # platform message ids remembered per session against duplicate deliveries


@dataclass(frozen=True, slots=True)
class TurnTimings:
    """The collection window's timings, seconds: see ``bot.game.turns.TurnCollector``."""

    extend_s: float
    max_window_s: float


@dataclass(frozen=True, slots=True)
class LastTurn:
    """The newest answered turn as held in memory: its number, the DM's reply, the actions it
    answered and the table notes stored before the reply (dice, sheet changes)."""

    turn: int
    dm: StoryMessage
    actions: tuple[StoryMessage, ...]
    notes: tuple[StoryMessage, ...]


def window_seconds(config: GuildConfig) -> float:
    """The collection window of a server's options, seconds ("mention" mode answers at once)."""
    return 0.0 if config.turn_mode == "mention" else config.turn_window_seconds


class GameSession:
    """The state of one channel's live campaign.

    Attributes:
        campaign, config, party, summary: current records (replaced, never mutated in place).
        history: answered, unsummarised story messages in story order (by turn, then id).
        lore: the live lorebook entries (secrets included), oldest first; kept in step by every
            lore change through ``put_lore``/``drop_lore`` (``lore_version`` counts changes, so a
            matcher built from them knows when to rebuild).
        safety: the table's lines and veils (``TableSafety``), rules of the system message.
        encounter: the running fight (``bot.game.combat.Encounter``) or None; ``encounter_version``
            counts its changes (the tracker message follows them).
        pending: stored actions not yet answered, oldest first.
        pace: the table's pace (``bot.game.pace.TablePace``): settings, open round, players' choices.
        stalled: ids of pending actions whose turn failed; they wait for a new action or a resume.
        collector: the next turn's collection window.
        window: the sticky history window of the prompt.
        lock: held while a turn, a retry, an undo or a sheet change runs.
        busy: True while a turn or a retry is being answered.
        answering: ids of the pending actions the running turn answers (an edit or deletion of one
            of them changes nothing: the DM already read it).
        recovering: True while actions left by a previous process wait for their first answer.
        recent_actions: player id -> times (clock seconds) of their latest actions, for the burst gate.
        storing: actions past the queue check whose INSERT has not returned yet.
        last_active: clock seconds of the last action or answered turn (for idle eviction).
        closed: True once the session was unloaded or its campaign ended.
    """

    def __init__(self, campaign: Campaign, config: GuildConfig, party: list[Character], summary: Summary | None,
                 history: list[StoryMessage], pending: list[StoryMessage], *, timings: TurnTimings,
                 now: float, lore: list[LoreEntry] | None = None) -> None:
        self.campaign = campaign
        self.lore: list[LoreEntry] = lore or []
        self.lore_version = 0
        self.encounter: Encounter | None = None
        self.encounter_version = 0
        self.safety = TableSafety()
        self.config = config
        self.party = party
        self.summary = summary
        self.history = history
        self.pending = pending
        self.timings = timings
        self.collector = TurnCollector(window_seconds(config), timings.extend_s, timings.max_window_s)
        self.pace = TablePace(server_pace=config.pace)
        self.window = ctxmod.HistoryWindow()
        self.lock = asyncio.Lock()
        self.busy = False
        self.answering: set[int] = set()
        self.early: dict[int, IncomingMessage | None] = {}  # message id -> its edit (None: deleted) that
        # arrived while the message itself was still on its way to the store
        self.closed = False
        self.recovering = bool(pending)
        self.stalled: set[int] = set()
        self.recent_actions: dict[int, deque[float]] = {}
        self.storing = 0
        self.last_active = now
        self._recent_ids: deque[int] = deque()
        self._recent_set: set[int] = set()
        self._system: str | None = None
        self._party_text: str | None = None

    # --- who is here -------------------------------------------------------------------------------
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

    def spotlight(self) -> int | None:
        """The user id of the player whose character's turn it is in the running fight (the turn
        window closes once they act); None outside combat, on a monster's or NPC's turn, or when
        that character has left the party."""
        active = self.encounter.active if self.encounter is not None else None
        if active is None or active.kind != "pc" or active.player_id is None:
            return None
        return active.player_id if self.character_of(active.player_id) is not None else None

    def find_character(self, name: str) -> Character | None:
        """The active character called ``name`` (case-insensitive, surrounding spaces ignored)."""
        wanted = name.strip().casefold()
        return next((c for c in self.party if c.name.casefold() == wanted), None)

    # --- changes ----------------------------------------------------------------------------------
    def set_party(self, party: list[Character]) -> None:
        """Replace the party (and forget the cached party text)."""
        self.party = party
        self._party_text = None

    def replace_character(self, updated: Character) -> None:
        """Put a changed sheet in place of the one with the same id."""
        self.set_party([updated if c.id == updated.id else c for c in self.party])

    def set_config(self, config: GuildConfig) -> None:
        """Apply a server's changed options (turn mode, window, model, rating...)."""
        self.config = config
        self.pace.server_pace = config.pace
        self.collector.configure(window_seconds(config), self.timings.extend_s, self.timings.max_window_s)
        self._system = None

    def set_campaign(self, campaign: Campaign) -> None:
        """Replace the campaign record (status or turn changed)."""
        self.campaign = campaign

    def set_summary(self, summary: Summary, folded: int) -> None:
        """A memory fold replaced the summary and took the oldest ``folded`` history messages."""
        self.summary = summary
        self.history = self.history[folded:]
        self._system = None

    def set_safety(self, safety: TableSafety) -> None:
        """The table's lines or veils changed (they are rules of the system message)."""
        self.safety = safety
        self._system = None

    def set_encounter(self, encounter: Encounter | None) -> None:
        """The fight changed (None: it is over)."""
        self.encounter = encounter
        self.encounter_version += 1

    def put_lore(self, entry: LoreEntry) -> None:
        """A lorebook entry was created or changed (in place of the one with its id)."""
        self.lore = [e for e in self.lore if e.id != entry.id] + [entry]
        self.lore.sort(key=lambda e: e.id)
        self.lore_version += 1

    def drop_lore(self, entry_id: int) -> None:
        """A lorebook entry was forgotten or undone."""
        self.lore = [e for e in self.lore if e.id != entry_id]
        self.lore_version += 1

    def set_lore(self, entries: list[LoreEntry]) -> None:
        """Replace the whole lorebook (after an undo reloaded it)."""
        self.lore = sorted(entries, key=lambda e: e.id)
        self.lore_version += 1

    def add_note(self, note: StoryMessage) -> None:
        """A table event was stored (a character joined, a roll outside a turn)."""
        self.history.append(note)

    def answered(self, actions: Sequence[StoryMessage], turn: int, notes: Sequence[StoryMessage],
                 dm: StoryMessage) -> None:
        """A turn was committed: ``actions`` leave the queue and join the story with the turn's table
        notes and the DM's reply; the campaign's turn counter becomes ``turn``."""
        done = {a.id for a in actions}
        self.pending = [p for p in self.pending if p.id not in done]
        self.stalled -= done
        self.history.extend(replace(a, state="answered", turn=turn) for a in actions)
        self.history.extend(notes)
        self.history.append(dm)
        self.campaign = replace(self.campaign, turn=max(self.campaign.turn, turn))
        self.pace.answered(actions, turn)

    def replaced(self, last: LastTurn, notes: Sequence[StoryMessage], dm: StoryMessage) -> None:
        """A retry was committed: ``last``'s reply and table notes give way to ``notes`` and ``dm``,
        at the reply's place in the story."""
        gone = {last.dm.id, *(m.id for m in last.notes)}
        at = self.history.index(last.dm)
        kept_before = [m for m in self.history[:at] if m.id not in gone]
        self.history = [*kept_before, *notes, dm, *self.history[at + 1:]]

    def undone(self, turn: int, campaign_turn: int) -> None:
        """``/undo`` took ``turn`` out of the story; the campaign's counter is now ``campaign_turn``."""
        self.history = [m for m in self.history if m.turn != turn]
        self.campaign = replace(self.campaign, turn=campaign_turn)

    # --- questions --------------------------------------------------------------------------------
    def has_work(self) -> bool:
        """True when an active campaign has pending actions that did not just fail."""
        if self.campaign.status != "active" or not self.pending:
            return False
        return not self.stalled or any(p.id not in self.stalled for p in self.pending)

    # --- pace ---------------------------------------------------------------------------------------
    def rounds(self) -> bool:
        """True when turns close by rounds now (the pace is ``rounds``, or ``auto`` at rounds) and the
        turn mode groups actions (``mention`` mode answers each mention at once, whatever the pace)."""
        return self.config.turn_mode != "mention" and self.pace.mode() == "rounds"

    def waits(self) -> bool:
        """True when the pending actions wait for a turn to close (an open window or round); False
        when they are to be answered at once (a resume, recovered actions)."""
        if self.rounds():
            return self.pace.round is not None or self.collector.is_open
        return self.collector.is_open

    def waiting_for(self) -> list[Character]:
        """The characters whose actions the DM waits for before it answers (empty under ``live``):
        in a fight on a player character's turn, that character until its player acts; otherwise the
        active characters that have not acted in the round."""
        if not self.rounds() or self.pace.round is None:
            return []
        unanswered = [p for p in self.pending if p.id not in self.answering]
        if self.encounter is not None and self.encounter.active is not None:
            spot = self.spotlight()
            if spot is None:
                return []
            character = self.character_of(spot)
            return [character] if character is not None and spot not in acted(unanswered) else []
        return waiting_for(self.party, self.pace, unanswered, self.campaign.turn)

    def turn_ready(self, now: float, wall: float) -> bool:
        """Whether the turn closes now (``now``: the clock's seconds, ``wall``: UNIX seconds).

        Live: the collector's window (``TurnCollector.ready``). Rounds: the round's deadline passed, or
        nobody is waited for (``waiting_for``); in a fight on a monster's or NPC's turn, the live
        window (the DM plays it)."""
        if not self.rounds() or self.pace.round is None:
            # an unopened window with work (a round given up for live, a resume) is answered at once
            return not self.collector.is_open or self.collector.ready(now, self.party_ids(), self.spotlight())
        if wall >= self.pace.round.deadline_at:
            return True
        if self.encounter is not None and self.encounter.active is not None and self.spotlight() is None:
            return not self.collector.is_open or self.collector.ready(now, (), None)
        return not self.waiting_for()

    def held_by_round(self, now: float, wall: float) -> bool:
        """True when the pending actions wait for an open round that is not over (``now``: clock
        seconds, ``wall``: UNIX seconds): nothing to answer until a player posts or the deadline."""
        return self.rounds() and self.pace.round is not None and not self.turn_ready(now, wall)

    def wake_at(self, now: float, wall: float) -> float | None:
        """When (clock seconds) the worker must look again without news: the live window's close,
        or the round's reminder or deadline, whichever comes first."""
        if not self.rounds() or self.pace.round is None:
            return self.collector.deadline
        r = self.pace.round
        at = r.deadline_at
        share = self.pace.settings.share
        if not r.reminded and share > 0:
            at = min(at, self.reminder_at())
        if self.encounter is not None and self.encounter.active is not None and self.spotlight() is None \
                and self.collector.deadline is not None:
            return min(self.collector.deadline, now + (at - wall))
        return now + (at - wall)

    def reminder_at(self) -> float:
        """UNIX seconds when the open round's reminder is due (``inf`` without a round or reminders)."""
        r = self.pace.round
        share = self.pace.settings.share
        if r is None or share <= 0:
            return float("inf")
        return r.opened_at + share * (r.deadline_at - r.opened_at)

    def last_turn(self) -> LastTurn:
        """The newest answered turn held in memory. Raises ``NothingToUndo``."""
        dm = next((m for m in reversed(self.history) if m.role == "dm"), None)
        if dm is None:
            raise NothingToUndo()
        messages = [m for m in self.history if m.turn == dm.turn]
        return LastTurn(turn=dm.turn, dm=dm, actions=tuple(m for m in messages if m.role == "player"),
                        notes=tuple(m for m in messages if m.role == "system" and m.id < dm.id))

    def remember_message_id(self, message_id: int) -> bool:
        """Note a platform message id; False when it was seen recently (a duplicate delivery)."""
        if message_id in self._recent_set:
            return False
        self._recent_ids.append(message_id)
        self._recent_set.add(message_id)
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_set.discard(self._recent_ids.popleft())
        return True

    def recent_message_ids(self) -> set[int]:
        """The platform message ids seen recently (a read-only view, for edits racing their message)."""
        return self._recent_set

    # --- cached prompt parts ---------------------------------------------------------------------
    def system_text(self) -> str:
        """The system message (persona, rules, campaign, summary), byte-identical until the summary,
        the options or the campaign change."""
        if self._system is None:
            self._system = ctxmod.system_prompt(self.campaign, self.config, self.summary, self.safety)
        return self._system

    def party_text(self) -> str:
        """The party's sheets as text, cached until the party changes."""
        if self._party_text is None:
            self._party_text = ctxmod.party_block(self.party)
        return self._party_text


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A loaded channel: its state and the objects that act on it (built by the registry)."""

    state: GameSession
    worker: TurnWorker
    memory: MemoryKeeper
    sheets: SheetJournal

    @property
    def quiet(self) -> bool:
        """True when nothing runs or is about to run: the worker is parked with no wake-up pending,
        no turn and no memory fold is running."""
        return self.worker.quiet and not self.state.busy and not self.memory.running

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the worker and any fold. A running turn gets up to ``grace_s`` seconds to finish;
        after that it is cancelled and its actions stay pending (answered after a restart)."""
        self.state.closed = True
        await self.worker.close(grace_s if self.state.busy else 0.0)
        await self.memory.close()
