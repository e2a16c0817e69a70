"""The contract between the game core and its adapters (Discord cogs, terminal play).

Adapters turn platform events into ``IncomingMessage`` and command calls on ``GameAPI``; the core
answers through the adapter's ``Narrator``. Nothing here imports discord. Ids are Discord snowflakes
(ints) or any ints the adapter chooses (the terminal uses small numbers). ``guild_id`` is None for
direct messages / the terminal.

Errors: every command raises only ``bot.errors.BotError`` subclasses for expected problems (no
campaign in this channel, bad dice expression, not an admin, budget spent, ...); their
``player_message`` is what the adapter shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from typing import Literal, Protocol

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
    TableSafety,
    UsageReport,
)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message posted in a channel (or an ``/act``), as the adapter saw it.

    Attributes:
        explicit_action: True for ``/act``: always in character, never filtered as chatter.
        mentions_bot / replies_to_bot: for "mention" turn mode.
        created_at: UNIX seconds the platform stamped (None: now).
    """

    guild_id: int | None
    channel_id: int
    author_id: int
    author_name: str
    content: str
    message_id: int | None = None
    author_is_bot: bool = False
    mentions_bot: bool = False
    replies_to_bot: bool = False
    explicit_action: bool = False
    created_at: float | None = None


IntakeStatus = Literal["queued", "ignored", "refused"]
IntakeReason = Literal["", "action", "bot", "empty", "channel_not_allowed", "prefix", "ooc", "not_mentioned",
                       "no_campaign", "paused", "duplicate", "too_long", "budget", "queue_full", "cooldown",
                       "moderated", "answered", "withdrawn"]
ReplyKind = Literal["turn", "retry", "notice", "recovered"]


@dataclass(frozen=True, slots=True)
class Intake:
    """What happened to an ``IncomingMessage``.

    ``queued``: stored (committed) as a pending action; the DM will answer it in a turn.
    ``ignored``: not for the DM (another bot, OOC, a command prefix, no campaign, ...); ``reason`` says
    which, as a short machine-friendly word ("bot", "ooc", "prefix", "no_campaign", "paused",
    "not_mentioned", "channel_not_allowed", "empty", "duplicate").
    ``refused``: for the DM but not accepted; ``player_message`` says why, for the author (too long,
    queue full, on cooldown, budget spent, not in the party...). Reason "moderated": flagged by the
    server's moderation; the message is stored as refused (``refused_messages``), never sent to the DM,
    and the adapter shows ``player_message`` to its author only (ephemeral, or a short reply).
    """

    status: IntakeStatus
    reason: IntakeReason = ""
    player_message: str | None = None
    story_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class DMReply:
    """One DM reply to deliver to a channel.

    Attributes:
        text: the narration (Markdown; may be longer than a Discord message: the adapter splits).
        rolls: dice rolled by code during this turn, in order, to show with their breakdown.
        turn: the turn number this reply completes.
        answered_message_ids: platform message ids of the player actions this reply answers.
        kind: "turn" (normal), "retry" (regenerated reply), "notice" (a table message from the core,
            e.g. "the DM is out of credit"), "recovered" (answer to actions left over from a restart).
        ping_user_ids: users the message may mention (a round's reminder, for players who asked to be
            pinged); every other mention in the text stays inert.
    """

    channel_id: int
    text: str
    turn: int = 0
    rolls: tuple[RollRecord, ...] = ()
    answered_message_ids: tuple[int, ...] = ()
    kind: ReplyKind = "turn"
    campaign_id: int | None = None
    ping_user_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TrackerView:
    """The combat tracker as the table sees it (built by ``bot.game.tracker.render``): a title (the
    round and whose turn it is) and one line per combatant in initiative order.

    Attributes:
        round: 1, 2, ...; 0 before the first turn.
        active: the name of the combatant whose turn it is (None before the first turn or when over).
        lines: one per combatant: a marker for the active one, initiative, name, hit points (player
            characters as numbers; monsters described unless the server shows numbers), conditions.
        ended: True once the fight is over (the last view of it).
    """

    round: int
    active: str | None
    lines: tuple[str, ...]
    ended: bool = False

    @property
    def title(self) -> str:
        """``Combat: round 2, Aria's turn`` (or not started / over)."""
        if self.ended:
            return "Combat: the fight is over"
        if self.round == 0 or self.active is None:
            return "Combat: not started (the first turn begins round 1)"
        return f"Combat: round {self.round}, {self.active}'s turn"

    @property
    def text(self) -> str:
        """The whole tracker as plain text (terminal play prints it; Discord puts it in an embed)."""
        return "\n".join([self.title, *(self.lines or (() if self.ended else ("(nobody in the fight yet)",)))])


@dataclass(frozen=True, slots=True)
class CombatChange:
    """What a ``/combat`` command did: the tracker after it and a sentence for the caller."""

    view: TrackerView
    text: str


class ReplyStream(Protocol):
    """A DM reply shown while the model is still writing it (``Narrator.stream``). The core calls
    ``show`` as the narration grows, then exactly one of ``finish`` and ``abandon``. No method raises
    for platform trouble (the adapter logs it)."""

    async def show(self, text: str, rolls: tuple[RollRecord, ...] = ()) -> None:
        """The narration so far, whole (not a delta), already passed by the guard, and the turn's
        dice so far (they go with the first message). Returns at once: the adapter shows the newest
        text at its own pace (Discord: an edit at most about once a second per channel). ``text``
        may shrink (the guard corrected it) or be "" (the model starts over)."""

    async def finish(self, reply: DMReply) -> None:
        """The reply is stored: show exactly ``reply``, as ``Narrator.deliver`` would have,
        replacing what was shown."""

    async def abandon(self, text: str) -> bool:
        """No reply will come (the model failed, the bot is stopping): replace whatever was shown
        with ``text``, a notice, so nothing half-written stays in front of the table. Returns True
        when the table now reads ``text`` (False: the platform refused; the core then tells the
        table the ordinary way). Cancelling it leaves whatever the last finished request showed."""


class Narrator(Protocol):
    """The adapter side: how the core speaks to a channel."""

    def stream(self, head: DMReply) -> ReplyStream | None:
        """A ``ReplyStream`` for the reply ``head`` describes (its channel, turn, kind, campaign and
        answered messages; its ``text`` and ``rolls`` are empty), or None when this adapter cannot
        show a reply while it is written (the core then calls ``deliver`` once it is complete)."""

    async def show_tracker(self, channel_id: int, campaign_id: int, view: TrackerView) -> None:
        """Show the combat tracker in ``channel_id``: Discord posts it once and then edits that message
        in place (a deleted one is posted anew); the terminal prints it. Must not raise for platform
        trouble: log it instead."""

    async def deliver(self, reply: DMReply) -> None:
        """Show a DM reply (or a notice) in ``reply.channel_id``. Must not raise for platform
        trouble: log it instead (the reply is already stored)."""

    def thinking(self, channel_id: int) -> AbstractAsyncContextManager[None]:
        """Context manager held while the DM is composing a reply (Discord: the typing indicator)."""


@dataclass(frozen=True, slots=True)
class CharacterSheetInput:
    """What a player gives when joining: name, class, ancestry, short backstory (and optional
    numbers; None = the core's defaults for the class)."""

    name: str
    char_class: str
    ancestry: str
    backstory: str = ""
    max_hp: int | None = None
    ac: int | None = None
    level: int = 1


@dataclass(frozen=True, slots=True)
class LoreEdit:
    """The fields a ``/lore edit`` changes; None leaves a field as it is.

    Attributes:
        name: the new name (1..``rules.LORE_NAME_MAX`` characters).
        kind: npc, place, faction, item, quest or fact; a quest's status is dropped when it stops being
            a quest, and a new quest starts "open".
        aliases: the new aliases (replace the old ones; empty clears them).
        description: the new description (``rules.LORE_DESCRIPTION_MAX`` characters and
            ``rules.LORE_DESCRIPTION_TOKENS`` tokens at most).
        status: a quest's "open", "done" or "failed".
        secret: True hides the entry from the players (creator or admin only).
    """

    name: str | None = None
    kind: str | None = None
    aliases: Sequence[str] | None = None
    description: str | None = None
    status: str | None = None
    secret: bool | None = None

    def is_empty(self) -> bool:
        """True when nothing would change."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True, slots=True)
class UndoResult:
    """``/undo``: the turn that was taken back and how many story messages it held."""

    turn: int
    messages_undone: int


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling a command: platform user id, display name, and whether the adapter has
    verified admin rights (Discord: Manage Server) or bot-owner rights."""

    user_id: int
    name: str
    is_admin: bool = False
    is_owner: bool = False


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """Where a command was called."""

    guild_id: int | None
    channel_id: int


class GameAPI(Protocol):
    """Everything the adapters may ask of the game core. Implemented by ``bot.game.core.Game``.

    Lifecycle: ``await game.start()`` (loads nothing eagerly, but schedules answers for actions left
    pending by a previous process), ``await game.close()`` (cancels background work, waits for running
    turns up to a short grace period). Replies reach players through the ``Narrator`` given to the
    constructor, never as return values of ``handle_message``.
    """

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    # --- play ------------------------------------------------------------------------------------
    async def handle_message(self, msg: IncomingMessage) -> Intake:
        """Filter, store (commit) and queue a player's message; returns at once (the DM's reply
        comes later through the Narrator)."""
        ...

    async def handle_edit(self, msg: IncomingMessage) -> Intake:
        """A player edited a message (``msg`` carries its id and new text): a pending action the DM has
        not started to answer takes the new text ("queued"), keeping the first in the store; an edit
        into chatter withdraws it; after the DM answered, nothing changes ("ignored", "answered")."""
        ...

    async def handle_delete(self, channel_id: int, message_id: int) -> Intake:
        """A message was deleted: a pending action the DM has not started to answer is withdrawn
        ("ignored", "withdrawn"); after the DM answered, nothing changes ("answered")."""
        ...

    # --- campaign --------------------------------------------------------------------------------
    async def start_campaign(self, where: ChannelRef, actor: Actor, *, title: str, setting: str = "",
                             tone: str = "") -> Campaign: ...
    async def end_campaign(self, where: ChannelRef, actor: Actor) -> Campaign: ...
    async def pause_campaign(self, where: ChannelRef, actor: Actor) -> Campaign: ...
    async def resume_campaign(self, where: ChannelRef, actor: Actor) -> Campaign: ...
    async def status(self, where: ChannelRef) -> CampaignStatusReport: ...
    async def recap(self, where: ChannelRef, chapter: int | None = None) -> str:
        """The story so far (Markdown, no model call): the chronicle's latest chapter (the running
        summary before the first), the open quests and the latest turns; with ``chapter`` (1, 2, ...)
        that chapter only. Never shows a secret (a recap may be posted to the table). Raises
        UserInputError for a chapter that does not exist."""
        ...
    async def export_markdown(self, where: ChannelRef, actor: Actor | None = None, *,
                              include_secrets: bool = False) -> str:
        """The whole transcript as a Markdown document (title, party, lorebook, chronicle, every
        turn, rolls). Secret lore entries only with ``include_secrets``, which needs ``actor`` to be
        the campaign's creator or an admin (NotAllowed otherwise)."""
        ...

    # --- party -----------------------------------------------------------------------------------
    async def join(self, where: ChannelRef, actor: Actor, sheet: CharacterSheetInput) -> Character: ...
    async def character(self, where: ChannelRef, *, user_id: int | None = None,
                        name: str | None = None) -> Character: ...
    async def edit_character(self, where: ChannelRef, actor: Actor, **changes: object) -> Character: ...
    async def leave(self, where: ChannelRef, actor: Actor) -> Character: ...
    async def party(self, where: ChannelRef) -> Sequence[Character]: ...
    async def character_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """For autocomplete: active character names in the channel's campaign starting with prefix."""
        ...

    # --- turns -----------------------------------------------------------------------------------
    async def retry(self, where: ChannelRef, actor: Actor) -> None:
        """Regenerate the last DM reply (delivered through the Narrator with kind="retry")."""
        ...
    async def undo(self, where: ChannelRef, actor: Actor) -> UndoResult: ...

    # --- dice ------------------------------------------------------------------------------------
    async def roll(self, where: ChannelRef, actor: Actor, expression: str, reason: str = "") -> RollRecord:
        """Roll a dice expression with d20; stored with the campaign if there is one."""
        ...

    # --- admin -----------------------------------------------------------------------------------
    async def get_config(self, guild_id: int) -> GuildConfig: ...
    async def set_config(self, guild_id: int, actor: Actor, key: str, value: str) -> GuildConfig:
        """Validate and store one option given as text (e.g. ("temperature", "0.9"),
        ("allowed_channel_ids", "123,456"), ("turn_mode", "mention"), ("model", "gpt-4o")).
        Raises UserInputError with a clear sentence for an unknown key or bad value, and a
        permission error (BotError) when ``actor.is_admin`` is False."""
        ...
    async def usage(self, where: ChannelRef) -> UsageReport: ...

    # --- lorebook and search ---------------------------------------------------------------------
    # Names match entries by name or alias, case-insensitively. Secret entries exist only for the
    # campaign's creator and admins; for everyone else (and for any answer shown to the whole table:
    # ``for_table=True``) they are absent, with the same sentence as an entry that does not exist.
    async def lore_show(self, where: ChannelRef, actor: Actor, name: str, *, for_table: bool = False) -> LoreEntry:
        """The entry called ``name``. Raises UserInputError when there is none the caller may see."""
        ...
    async def lore_list(self, where: ChannelRef, actor: Actor, *, kind: str | None = None,
                        status: str | None = None, for_table: bool = False) -> Sequence[LoreEntry]:
        """The entries the caller may see (by kind, then name), optionally of one kind (npc, place,
        faction, item, quest, fact) or quest status (open, done, failed)."""
        ...
    async def lore_names(self, where: ChannelRef, actor: Actor, prefix: str = "") -> list[str]:
        """For autocomplete: names of entries the caller may see matching ``prefix`` (at most 25)."""
        ...
    async def lore_add(self, where: ChannelRef, actor: Actor, *, kind: str, name: str,
                       aliases: Sequence[str] = (), description: str = "", secret: bool = False,
                       status: str | None = None) -> LoreEntry:
        """Add an entry (party members; a secret one: creator or admin). Raises UserInputError for a
        bad field or a taken name or alias, NotInParty, NotAllowed."""
        ...
    async def lore_edit(self, where: ChannelRef, actor: Actor, name: str, edit: LoreEdit) -> LoreEntry:
        """Change an entry: a player their own entries and facts about their character; others'
        entries and secrets need the creator or an admin (NotAllowed)."""
        ...
    async def lore_forget(self, where: ChannelRef, actor: Actor, name: str) -> LoreEntry:
        """Take an entry out of the lorebook (kept with its history); rights as ``lore_edit``."""
        ...
    async def lore_pin(self, where: ChannelRef, actor: Actor, name: str, pinned: bool = True) -> LoreEntry:
        """Pin (always in the DM's prompt) or unpin an entry; creator or admin only."""
        ...
    async def lore_history(self, where: ChannelRef, actor: Actor,
                           name: str) -> tuple[LoreEntry, Sequence[LoreRevision]]:
        """An entry and its changes, oldest first (revision ids, who, when, which turn)."""
        ...
    async def lore_revert(self, where: ChannelRef, actor: Actor, name: str, revision_id: int) -> LoreEntry:
        """Put an entry back as it was after revision ``revision_id``; creator or admin only."""
        ...
    async def search(self, where: ChannelRef, actor: Actor, query: str, *,
                     for_table: bool = False) -> Sequence[SearchHit]:
        """The best matches of ``query`` across the story, the chronicle and the lorebook, with turn
        numbers and snippets (the match between ``**``); secrets as for ``lore_show``."""
        ...

    # --- combat ----------------------------------------------------------------------------------
    # The running fight of the channel's campaign. Looking is for everyone; next, add, remove and end
    # need the campaign's creator or an admin (NotAllowed); every change shows the tracker through the
    # Narrator (``show_tracker``). CombatError (a UserInputError) for an impossible request.
    async def combat_show(self, where: ChannelRef) -> TrackerView:
        """The tracker of the running fight. Raises CombatError without one."""
        ...
    async def combat_next(self, where: ChannelRef, actor: Actor) -> CombatChange:
        """End the current turn: the next combatant who can act (the first call begins round 1)."""
        ...
    async def combat_add(self, where: ChannelRef, actor: Actor, name: str, count: int = 1, *,
                         hp: int | None = None, ac: int | None = None) -> CombatChange:
        """Add a party member by name, or ``count`` monsters (SRD numbers; homebrew needs ``hp`` and
        ``ac``) with initiative rolled by code; starts the fight when none runs."""
        ...
    async def combat_remove(self, where: ChannelRef, actor: Actor, name: str) -> CombatChange:
        """Take a combatant out of the fight."""
        ...
    async def combat_end(self, where: ChannelRef, actor: Actor) -> CombatChange:
        """End the fight (the tracker shows its final standings)."""
        ...
    async def combat_init(self, where: ChannelRef, actor: Actor, roll: int | None = None) -> CombatChange:
        """The caller's character rolls initiative (their own total, or d20 by code): joins the
        running fight, or changes its initiative. Raises NotInParty without a character."""
        ...
    async def combat_names(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """For autocomplete: the fight's combatants matching ``prefix``."""
        ...
    async def combat_addable(self, where: ChannelRef, prefix: str = "") -> list[str]:
        """For autocomplete: party members not in the fight, then SRD monster names, matching ``prefix``."""
        ...

    # --- table safety ----------------------------------------------------------------------------
    async def safety_show(self, where: ChannelRef) -> TableSafety:
        """The campaign's lines, veils and how often the X-card was used."""
        ...
    async def safety_change(self, where: ChannelRef, actor: Actor, kind: Literal["lines", "veils"], topic: str, *,
                            remove: bool = False) -> TableSafety:
        """Add or remove a line (never in the story) or a veil (off screen only); creator or admin."""
        ...
    async def xcard(self, where: ChannelRef, what: str = "") -> None:
        """Anyone, anonymously: the DM's last reply is rewritten without ``what`` (delivered as a
        retry; nobody is told who asked)."""
        ...

    # --- the journal (read-only web pages) -------------------------------------------------------
    async def set_pace(self, where: ChannelRef, actor: Actor, *, pace: str | None = None,
                       deadline_hours: float | None = None, reminder_share: float | None = None) -> PaceStatus:
        """The campaign's table pace (``bot.game.pacing.PaceService.set_pace``): creator or admin."""
        ...

    async def away(self, where: ChannelRef, actor: Actor) -> bool:
        """Toggle whether the DM waits for the actor's character in rounds; True: now away."""
        ...

    async def reminders(self, where: ChannelRef, actor: Actor, *, ping: bool) -> bool:
        """Whether round reminders mention (ping) the actor; returns the new choice."""
        ...

    async def journal_link(self, where: ChannelRef, actor: Actor) -> str:
        """A new, private link (URL) to the channel's campaign journal. Raises ``NoCampaign``, or
        ``UserInputError`` when the operator has not set the journal up."""
        ...
    async def journal_revoke(self, where: ChannelRef, actor: Actor) -> int:
        """Revoke every link to the channel's campaign journal (creator or admin: ``NotAllowed``);
        returns how many. A new link is one ``journal_link`` away."""
        ...
    async def usage_link(self, guild_id: int, actor: Actor, *, revoke_old: bool = False) -> str:
        """A new link (URL) to the server's usage page, for admins (``NotAllowed``); ``revoke_old``
        revokes the earlier ones."""
        ...
