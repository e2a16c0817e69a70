"""Table pace: when the DM answers a table that plays live or by post. Pure logic, no I/O.

A campaign's pace is ``live``, ``rounds`` or ``auto`` (its own setting, else the server's ``pace``
option, else ``auto``):

- ``live``: the turn collector's short window (``bot.game.turns.TurnCollector``), unchanged.
- ``rounds``, the play-by-post practice: the first message after the DM's reply opens a round; the
  DM answers once every *active* player character has posted an action in it, or when the round's
  deadline passes (``round_deadline_s`` after it opened, default 12 hours). Active: not ``/away``, and
  the character joined or its player posted an action within the last ``ACTIVE_TURNS`` turns. A
  message that is only speech (``is_say``: every word inside quotation marks) joins the round but is
  not that character's action; OOC messages never reach the queue at all. Once, at
  ``reminder_share`` of the deadline, the channel is told whose actions the DM waits for.
- ``auto``: starts live and follows the table's own pace: the gaps between consecutive messages of
  *different* players, as they reach the bot, over the last ``AUTO_GAPS`` such gaps. A median of at
  least ``ROUNDS_GAP_SECONDS`` (3 minutes) means the players post by post (rounds); at most
  ``LIVE_GAP_SECONDS`` (1 minute) means they are at the table together (live); in between, nothing
  changes. A live table therefore never waits for a missing player. Unless the campaign set its own
  deadline, auto's rounds last ``AUTO_DEADLINE_GAPS`` of the table's usual gaps (at least
  ``AUTO_DEADLINE_MIN_SECONDS``, at most the 12-hour default): a table posting minutes apart is not
  held half a day for one absent player, one posting hours apart gets the full deadline.

The thresholds come from the recorded play-by-post fight in tests/data/fireball (FIREBALL,
CC-BY-4.0): its players posted a median 68-219 s apart and its human DM answered 35 actions in 5
runs, so 3 minutes is where answering every post alone starts to fragment the scene; a live text
table posts well inside a minute (the same session replayed 10x faster is answered by the window).

In a running fight the initiative order decides the spotlight whatever the pace (the combat rule in
``bot.game.turns``); under rounds a player character's turn waits for its player (or the deadline)
instead of the live window.

Times here are UNIX seconds (``Clock.wall``), because a round survives a restart.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.models import (
    Character,
    PaceMode,
    PaceSetting,
    PaceSettings,
    PaceStatus,
    PlayerPace,
    Round,
    StoryMessage,
)

PACE_SETTINGS: tuple[PaceSetting, ...] = ("auto", "live", "rounds")

ROUND_DEADLINE_MIN_SECONDS = 60.0  # one minute (a test table) ...
ROUND_DEADLINE_MAX_SECONDS = 7 * 24 * 3600.0  # ... to a week
ACTIVE_TURNS = 3  # a character whose player posted (or who joined) within this many turns is active
AUTO_GAPS = 8  # how many recent gaps between different players' messages auto looks at
AUTO_MIN_GAPS = 4  # fewer than this: not enough evidence, the pace stays as it is
ROUNDS_GAP_SECONDS = 180.0  # median gap of 3 minutes or more: play by post
LIVE_GAP_SECONDS = 60.0  # median gap of a minute or less: a live table
AUTO_DEADLINE_GAPS = 6.0  # auto's round deadline: this many median gaps ...
AUTO_DEADLINE_MIN_SECONDS = 15 * 60.0  # ... but at least 15 minutes (and at most the 12-hour default)
RECENT_MESSAGES = 32  # player messages remembered for auto's evidence

_QUOTED = re.compile(r"[\"“”«»„][^\"“”«»„]*[\"“”«»„]")
_WORD = re.compile(r"\w")


def is_say(text: str) -> bool:
    """True when ``text`` is only speech: it has quoted words and no word outside quotation marks
    (``"Who goes there?"``), as opposed to an action (``"Halt!" I raise my spear.``)."""
    stripped = text.strip()
    if not _QUOTED.search(stripped) or not _WORD.search(stripped):
        return False
    return _WORD.search(_QUOTED.sub("", stripped)) is None


@dataclass(slots=True)
class TablePace:
    """The pace state of one campaign, held by its session.

    Attributes:
        settings: the campaign's own settings.
        server_pace: the server's ``pace`` option (used when ``settings.pace`` is None).
        players: player id -> ``PlayerPace``.
        round: the open round (rounds pace), or None.
        recent: (UNIX seconds, player id) of the latest player messages, oldest first.
        auto_mode: where ``auto`` stands now.
    """

    settings: PaceSettings = field(default_factory=PaceSettings)
    server_pace: PaceSetting = "auto"
    players: dict[int, PlayerPace] = field(default_factory=dict)
    round: Round | None = None
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=RECENT_MESSAGES))
    auto_mode: PaceMode = "live"

    def configured(self) -> PaceSetting:
        """The pace in force: the campaign's own, else the server's."""
        return self.settings.pace or self.server_pace

    def mode(self) -> PaceMode:
        """How turns close now: ``live`` or ``rounds`` (``auto`` resolved)."""
        configured = self.configured()
        return self.auto_mode if configured == "auto" else configured

    def deadline_s(self) -> float:
        """A new round's deadline, seconds: the campaign's own when set; under ``auto``, scaled to
        the table's pace (module docstring); otherwise the 12-hour default."""
        gap = self.median_gap()
        if self.settings.round_deadline_s is not None or self.configured() != "auto" or gap is None:
            return self.settings.deadline_s
        return min(self.settings.deadline_s, max(AUTO_DEADLINE_MIN_SECONDS, AUTO_DEADLINE_GAPS * gap))

    def player(self, player_id: int) -> PlayerPace:
        """The player's pace state (created on first use)."""
        found = self.players.get(player_id)
        if found is None:
            found = self.players[player_id] = PlayerPace()
        return found

    def note_message(self, at: float, player_id: int) -> bool:
        """A player message arrived at ``at`` (UNIX seconds): keep it as evidence and move ``auto``
        when the evidence says so. Returns True when ``auto_mode`` changed."""
        self.recent.append((at, player_id))
        before = self.auto_mode
        self.auto_mode = auto_mode(self.recent, self.auto_mode)
        return self.auto_mode != before

    def median_gap(self) -> float | None:
        """The median gap, seconds, between consecutive messages of different players (the last
        ``AUTO_GAPS``), or None with fewer than ``AUTO_MIN_GAPS``."""
        return median_gap(self.recent)

    def is_active(self, player_id: int, campaign_turn: int) -> bool:
        """Whether the DM waits for this player's character in a round (see the module docstring)."""
        p = self.players.get(player_id)
        if p is None:
            return True  # nothing known (a character from before pace was kept): wait for it
        if p.away:
            return False
        return max(p.joined_turn, p.last_turn) >= campaign_turn - ACTIVE_TURNS

    def answered(self, actions: Iterable[StoryMessage], turn: int) -> None:
        """A turn answered ``actions``: their players posted in ``turn``. (Their round was closed when
        the DM started answering; a round open now belongs to messages posted since.)"""
        for a in actions:
            if a.author_id is not None and a.role == "player":
                self.player(a.author_id).last_turn = max(self.player(a.author_id).last_turn, turn)


def median_gap(recent: Sequence[tuple[float, int]] | deque[tuple[float, int]]) -> float | None:
    """See ``TablePace.median_gap``: ``recent`` is (UNIX seconds, player id), oldest first."""
    ordered = sorted(recent)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ordered) if a[1] != b[1]][-AUTO_GAPS:]
    if len(gaps) < AUTO_MIN_GAPS:
        return None
    return float(statistics.median(gaps))


def auto_mode(recent: Sequence[tuple[float, int]] | deque[tuple[float, int]], current: PaceMode) -> PaceMode:
    """Where ``auto`` goes from ``current`` given the recent messages (see the module docstring)."""
    gap = median_gap(recent)
    if gap is None:
        return current
    if gap >= ROUNDS_GAP_SECONDS:
        return "rounds"
    if gap <= LIVE_GAP_SECONDS:
        return "live"
    return current


def acted(pending: Iterable[StoryMessage]) -> set[int]:
    """Players with an action (not only speech) among ``pending``."""
    return {a.author_id for a in pending if a.author_id is not None and not is_say(a.content)}


def waiting_for(party: Sequence[Character], pace: TablePace, pending: Sequence[StoryMessage],
                campaign_turn: int) -> list[Character]:
    """The active characters whose players have not posted an action in the round, party order."""
    done = acted(pending)
    return [c for c in party if c.player_id not in done and pace.is_active(c.player_id, campaign_turn)]


def describe_gap(seconds: float) -> str:
    """A gap for people: "40 s", "12 min", "3 h", "2 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def pace_line(status: PaceStatus, wall: float) -> str:
    """The pace as one plain line (terminal play; ``wall``: UNIX seconds now): the mode and why, the
    open round's deadline, whom the DM waits for, who is away."""
    auto = "auto: " if status.configured == "auto" else ""
    parts = [f"Pace: {status.mode} ({auto}{status.reason})"]
    if status.round_deadline_at is not None:
        parts.append(f"the round closes in {describe_gap(max(0.0, status.round_deadline_at - wall))}")
    if status.waiting_for:
        parts.append("waiting for " + ", ".join(status.waiting_for))
    if status.away:
        parts.append("away: " + ", ".join(status.away))
    return "; ".join(parts)


_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#-])")


def reminder_text(waiting: Sequence[Character], deadline_in_s: float, *, fight: bool = False) -> str:
    """The channel's reminder: whose actions the DM waits for, by character name (Markdown escaped,
    so a name is shown as typed). ``fight``: it is that character's turn in the initiative order."""
    names = [_MARKDOWN.sub(r"\\\1", c.name) for c in waiting]
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    closes = describe_gap(max(0.0, deadline_in_s))
    if fight:
        return (f"⏳ It is {who}'s turn in the fight and the DM is waiting for it. The round closes in {closes}"
                " or as soon as they act (`/away` if you're out for a while).")
    return (f"⏳ The DM is waiting for {who} to act (a line of speech alone is not an action). The round closes"
            f" in {closes} or as soon as everyone has posted (`/away` if you're out for a while).")
