"""Domain records shared by the store, the game core and the adapters. Plain data, no I/O.

Times are UNIX seconds (float, UTC). Token counts are tiktoken tokens of the campaign's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

CampaignStatus = Literal["active", "paused", "ended"]
StoryRole = Literal["player", "dm", "system"]
# pending: stored, not yet answered by the DM; answered: part of a finished turn;
# undone: removed from the story by /undo (kept for the audit trail, never sent to the model).
MessageState = Literal["pending", "answered", "undone"]
TurnMode = Literal["batch", "mention"]
LoreKind = Literal["npc", "place", "faction", "item", "quest", "fact"]
QuestStatus = Literal["open", "done", "failed"]
# Who changed the lorebook: the DM (the model's tools), a memory fold's extraction, a player, an admin.
LoreAuthor = Literal["dm", "extract", "player", "admin"]
LoreAction = Literal["create", "update", "forget", "revert"]
SearchSource = Literal["story", "chapter", "lore"]
ContentRating = Literal["family", "teen", "mature"]
PaceSetting = Literal["live", "rounds", "auto"]  # a campaign's or server's pace (bot.game.pace)
PaceMode = Literal["live", "rounds"]  # how turns close now ("auto" resolved)
DEFAULT_ROUND_DEADLINE_SECONDS = 12 * 3600.0
DEFAULT_REMINDER_SHARE = 0.5  # remind halfway to the deadline; 0 turns reminders off


@dataclass(frozen=True, slots=True)
class GuildConfig:
    """Per-server options (``/config``). ``None`` in the database means "use the process default"
    from ``Settings``; this record always holds the effective values.

    Attributes:
        model: model name sent to the endpoint.
        temperature: sampling temperature, 0..2.
        max_tokens: longest DM reply, tokens.
        turn_mode: "batch" (group turns) or "mention" (answer only mentions/replies).
        turn_window_seconds: collection window after a turn's first action, seconds.
        allowed_channel_ids: channels the bot may play in; empty = any channel.
        ignored_prefixes: other bots' command prefixes to ignore (e.g. "!").
        guild_daily_token_budget: tokens per UTC day for the server, 0 = unlimited.
        player_daily_token_budget: tokens per UTC day per player, 0 = unlimited.
        dm_style: free text describing the narrative style.
        content_rating: "family", "teen" or "mature".
        show_monster_hp: the combat tracker shows monsters' hit points as numbers (default: described
            as unhurt, hurt, bloodied or down).
        average_monster_hp: SRD monsters join a fight with their stat block's listed average hit
            points instead of hit points rolled from their hit dice (default: rolled).
        moderation: player input and the DM's output are checked with the endpoint's moderation API,
            with thresholds that follow ``content_rating`` (``bot.game.moderation``; default off).
        stream_replies: the DM's reply is shown while the model writes it (``bot.game.streaming``;
            default: the ``STREAM_REPLIES`` setting). Replies are whole while ``moderation`` is on,
            since a reply must be moderated before anyone reads it.
        pace: the default table pace of the server's campaigns, "auto", "live" or "rounds"
            (``bot.game.pace``; a campaign's creator can choose its own with ``/campaign pace``).
    """

    guild_id: int
    model: str
    temperature: float
    max_tokens: int
    turn_mode: TurnMode
    turn_window_seconds: float
    allowed_channel_ids: tuple[int, ...]
    ignored_prefixes: tuple[str, ...]
    guild_daily_token_budget: int
    player_daily_token_budget: int
    dm_style: str
    content_rating: ContentRating
    show_monster_hp: bool = False
    moderation: bool = False
    average_monster_hp: bool = False
    stream_replies: bool = True
    pace: PaceSetting = "auto"

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The option names admins can set (every field but ``guild_id``)."""
        return tuple(f.name for f in fields(cls) if f.name != "guild_id")

    def with_overrides(self, overrides: dict[str, Any]) -> GuildConfig:
        """A copy with the non-None values of ``overrides`` applied (keys must be in ``keys()``)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign played in one channel. At most one is active or paused per channel.

    ``turn`` is the number of the last turn the DM answered (0 before the first reply).
    """

    id: int
    guild_id: int | None
    channel_id: int
    title: str
    setting: str
    tone: str
    status: CampaignStatus
    created_by: int
    created_at: float
    turn: int = 0


@dataclass(frozen=True, slots=True)
class Character:
    """A player character's sheet. ``hp``/``max_hp`` are hit points, ``ac`` armor class.

    ``conditions`` and ``inventory`` are short free-text items ("poisoned", "rope (50 ft)").
    """

    id: int
    campaign_id: int
    player_id: int
    player_name: str
    name: str
    char_class: str
    ancestry: str
    backstory: str = ""
    level: int = 1
    hp: int = 10
    max_hp: int = 10
    ac: int = 10
    conditions: tuple[str, ...] = ()
    inventory: tuple[str, ...] = ()
    notes: str = ""
    active: bool = True


@dataclass(frozen=True, slots=True)
class StoryMessage:
    """One message of the story as stored.

    Attributes:
        turn: the turn it belongs to (player actions get the turn they are answered in when the
            turn closes; until then the turn number it was queued for).
        role: "player" (an in-character action), "dm" (the DM's narration) or "system" (a table
            event such as a roll or a joining character, shown to the model as context).
        author_name: display name; character_name: the PC speaking, for player messages.
        token_count: tiktoken tokens of ``content`` (counted once when stored, never again).
        state: "pending", "answered" or "undone".
        platform_message_id: the Discord message id (or None for terminal play).
    """

    id: int
    campaign_id: int
    turn: int
    role: StoryRole
    author_id: int | None
    author_name: str
    character_name: str | None
    content: str
    token_count: int
    state: MessageState
    created_at: float
    platform_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The running summary of a campaign: everything up to and including message ``through_message_id``
    is folded into ``content`` (``token_count`` tokens)."""

    campaign_id: int
    content: str
    token_count: int
    through_message_id: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class RollRecord:
    """A dice roll performed by code (never by the model).

    ``expression`` is the dice expression as given (``1d20+5``), ``breakdown`` the d20 library's
    rendering (``1d20 (14) + 5 = `19```), ``total`` the result.
    """

    id: int | None
    campaign_id: int | None
    turn: int | None
    roller_id: int | None
    roller_name: str
    character_name: str | None
    expression: str
    reason: str
    total: int
    breakdown: str
    created_at: float
    by_dm: bool = False


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Aggregated model usage: requests, tokens and US dollars (None if any call was unpriced).
    ``estimated_requests``: calls whose tokens the bot counted itself (tiktoken) because the endpoint
    reported none."""

    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cost_usd: float | None
    estimated_requests: int = 0


@dataclass(frozen=True, slots=True)
class UsageReport:
    """``/usage``: per-model lines for the server and (if any) the channel's campaign, today (UTC)
    and all time."""

    guild_today: tuple[UsageLine, ...] = ()
    guild_all_time: tuple[UsageLine, ...] = ()
    campaign_today: tuple[UsageLine, ...] = ()
    campaign_all_time: tuple[UsageLine, ...] = ()
    campaign_title: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignStatusReport:
    """``/campaign status``: the campaign, its party, counts and what is waiting.

    Attributes:
        story_messages: live (not undone) story messages.
        pending_actions: actions waiting for the DM.
        summary_tokens: tokens of the running summary.
        busy: True while the DM is writing a reply.
        turn_mode, model: the server's turn mode and model.
        unsummarised_tokens: prompt tokens the story not yet folded into the summary would cost.
        guard_interventions: output-guard rule -> times it stepped in (for admins).
        pace: the table's pace, the open round's deadline and whom the DM waits for.
    """

    campaign: Campaign
    party: tuple[Character, ...]
    story_messages: int
    pending_actions: int
    summary_tokens: int
    busy: bool = False
    turn_mode: TurnMode = "batch"
    model: str = ""
    unsummarised_tokens: int = 0
    guard_interventions: dict[str, int] = field(default_factory=dict)
    pace: PaceStatus | None = None


@dataclass(frozen=True, slots=True)
class Chapter:
    """One chapter of the chronicle: a permanent summary of exactly one folded span of story.

    Attributes:
        number: 1, 2, ... in story order, per campaign.
        first_turn, last_turn: the turns the span covers.
        through_message_id: the last story message id the chapter covers.
        started_at, ended_at: UNIX seconds of the span's first and last message.
        token_count: tokens of ``content``.
    """

    id: int
    campaign_id: int
    number: int
    first_turn: int
    last_turn: int
    through_message_id: int
    started_at: float
    ended_at: float
    content: str
    token_count: int
    created_at: float


@dataclass(frozen=True, slots=True)
class LoreEntry:
    """A lorebook entry: something the DM must not forget.

    Attributes:
        kind: npc, place, faction, item, quest or fact.
        aliases: other names it goes by (matched like the name).
        description: a short text, at most ``bot.game.rules.LORE_DESCRIPTION_TOKENS`` tokens.
        status: for quests, "open", "done" or "failed"; None for other kinds.
        secret: a DM secret the players never see (not in /lore, search, recap or their export).
        pinned: always in the DM's prompt, named or not.
        created_by_kind, created_by: who made it (a user id for players and admins).
        created_turn: the turn it was made in (undo of that turn removes it).
        last_named_turn: the latest turn whose actions or story named it (for ranking).
        edited_by_people: a player or an admin changed it; a fold's extraction never overwrites it.
    """

    id: int
    campaign_id: int
    kind: LoreKind
    name: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    token_count: int = 0
    status: QuestStatus | None = None
    secret: bool = False
    pinned: bool = False
    created_by_kind: LoreAuthor = "dm"
    created_by: int | None = None
    created_turn: int = 0
    last_named_turn: int = 0
    edited_by_people: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LoreRevision:
    """One change of a lorebook entry, with who made it and the entry as it was after it (``snapshot``
    is a ``LoreEntry`` as a dict, or None after ``forget``)."""

    id: int
    entry_id: int
    campaign_id: int
    turn: int
    action: LoreAction
    author_kind: LoreAuthor
    author_id: int | None
    author_name: str
    snapshot: dict[str, Any] | None
    created_at: float


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result of a campaign search: where it is (``source`` and the row id), the turn (story),
    chapter number (chapter) or entry name (lore), and a short snippet with the match marked."""

    source: SearchSource
    ref_id: int
    turn: int | None
    label: str
    snippet: str
    rank: float


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """A player message the DM did not take (e.g. flagged by moderation): stored for the campaign's
    admins, never sent to the model. ``reason`` is the intake's reason word (``"moderated"``);
    ``created_at`` UNIX seconds."""

    id: int
    campaign_id: int
    author_id: int
    author_name: str
    content: str
    reason: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TableSafety:
    """A campaign's safety tools: *lines* (content never in the story), *veils* (content that may
    happen, off screen only) and how often the X-card was used (never by whom)."""

    lines: tuple[str, ...] = ()
    veils: tuple[str, ...] = ()
    xcard_uses: int = 0


@dataclass(frozen=True, slots=True)
class PaceSettings:
    """A campaign's own pace settings; None means "the default".

    Attributes:
        pace: the campaign's pace (None: the server's ``pace`` option).
        round_deadline_s: seconds from a round's first message to its deadline (None: 12 hours).
        reminder_share: when the reminder is posted, as a share of the deadline, 0 (never) to 0.95
            (None: 0.5).
    """

    pace: PaceSetting | None = None
    round_deadline_s: float | None = None
    reminder_share: float | None = None

    @property
    def deadline_s(self) -> float:
        """The round deadline, seconds."""
        return self.round_deadline_s if self.round_deadline_s is not None else DEFAULT_ROUND_DEADLINE_SECONDS

    @property
    def share(self) -> float:
        """The reminder's share of the deadline (0: no reminder)."""
        return self.reminder_share if self.reminder_share is not None else DEFAULT_REMINDER_SHARE


@dataclass(slots=True)
class PlayerPace:
    """One player's pace state in a campaign.

    Attributes:
        away: the player said ``/away``: the DM does not wait for their character (until they post).
        ping: reminders mention them (they asked to be pinged); default: named without a ping.
        joined_turn: the campaign turn when their current character joined.
        last_turn: the last turn that answered an action of theirs (0: none).
    """

    away: bool = False
    ping: bool = False
    joined_turn: int = 0
    last_turn: int = 0


@dataclass(slots=True)
class Round:
    """An open round: UNIX seconds it opened and its deadline; ``reminded``: the reminder was posted."""

    opened_at: float
    deadline_at: float
    reminded: bool = False


@dataclass(frozen=True, slots=True)
class PaceStatus:
    """The table's pace as ``/campaign status`` and terminal play show it.

    Attributes:
        configured: the pace in force ("auto", "live", "rounds"; the campaign's or the server's).
        mode: how turns close now ("live" or "rounds"); ``reason``: why, for people.
        deadline_s: a round's deadline, seconds; ``reminder_share``: when the reminder comes (0: never).
        round_opened_at, round_deadline_at: the open round, UNIX seconds (None: no round open).
        waiting_for: characters whose actions the DM waits for; ``away``: characters whose players
            said ``/away``.
    """

    configured: PaceSetting
    mode: PaceMode
    reason: str
    deadline_s: float
    reminder_share: float
    round_opened_at: float | None = None
    round_deadline_at: float | None = None
    waiting_for: tuple[str, ...] = ()
    away: tuple[str, ...] = ()
