"""Table pace on a play-by-post session (``python -m bench --only pace``).

The FIREBALL session (tests/data/fireball/raw.jsonl, CC-BY-4.0: 182 messages of a real Discord game
with the Avrae bot, 65 minutes) is replayed through the real game core (``bot.game.core.Game``) at its
recorded pace: a discrete-event simulation on a ``ManualClock`` whose ``wall()`` starts at the first
message's timestamp, so the 65 recorded minutes (and a 12-hour round deadline) pass in a second of
real time, deterministically. The model is in this process and takes ``LATENCY`` simulated seconds a
call. It runs three ways: the old fixed window (campaign pace ``live``), ``auto`` (the server's
default) and ``rounds`` (set by the campaign's creator with ``Game.set_pace``); and, unmarked, under
``auto`` with every recorded gap ten times longer (a forum's pace, where auto turns to rounds).

What is fed: every message in recorded order except the human DM's (Player 0; the bot is the DM now):
Avrae's and the players' ``!`` commands reach the intake and are ignored there, like the players'
out-of-character asides and wordless lines. The five players join with characters first.

The recorded table's figures are computed from the data alone, by rules written here (never the bot's):
in-character player messages; the human DM's narration runs (its consecutive messages among the
table's human, non-command messages); Avrae's initiative turns (its "**Initiative" posts, less the one a
``!i prev`` stepped back to); the rounds of the party's posts as the ``rounds`` rule describes them (a
round opens at the first action after the last closed, and closes once every party character has
posted an action that is not only speech, or 12 hours after it opened).

Per mode: DM turns, model calls, the longest wait of any action (simulated seconds from being posted
to the DM starting to answer it, and to its reply), rounds opened, and the most DM turns that answered
actions of one round of the party's posts (counted from the bot's first action under rounds when
``auto`` starts live). How far the longest wait is past the deadline is that wait less the deadline
(an upper bound for every action: its round opened at or before it was posted). Marks: under
``rounds`` at most one DM turn per round, and no action waits past its round's deadline (the DM
starts answering by then; the reply follows ``LATENCY`` seconds later). The bot never runs its own
encounter here (Avrae's initiative is not the bot's fight), so the whole replay is out of combat for
the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.support.fireball import expected_kind, load_messages, user_id

HUMAN_DM = "Player 0"  # the recorded session's human DM (it also plays Nitar, a DM's character)
LATENCY = 3.0  # simulated seconds per model call
DEADLINE_S = 12 * 3600.0  # the round deadline's default (bot.models.DEFAULT_ROUND_DEADLINE_SECONDS)
CHANNEL = 55
SETTLE_TIMEOUT_S = 10.0  # real seconds the core may take to react to one clock step
MODE_TIMEOUT_S = 60.0  # real seconds for a whole replay
SLOW = 10.0  # the unmarked fourth run: every recorded gap ten times longer
_QUOTE = re.compile(r"[\"“”][^\"“”]*[\"“”]")


# --- the recorded table, from the data alone ---------------------------------------------------------
def only_speech(text: str) -> bool:
    """Every word inside quotation marks (a line of dialogue, not an action)."""
    return bool(_QUOTE.search(text)) and not re.search(r"\w", _QUOTE.sub("", text))


def runs_of(messages: list[dict[str, Any]], author: str) -> list[list[dict[str, Any]]]:
    """Maximal stretches of ``author``'s messages in ``messages``."""
    runs: list[list[dict[str, Any]]] = []
    previous = None
    for m in messages:
        if m["author_name"] == author:
            if previous != author:
                runs.append([])
            runs[-1].append(m)
        previous = m["author_name"]
    return runs


def party_rounds(actions: list[dict[str, Any]], party: set[int], deadline_s: float) -> list[dict[str, Any]]:
    """The rounds of the party's posts: ``opened``/``closed`` (recorded UNIX seconds), ``ids``, ``by``
    ("everyone" or "deadline")."""
    rounds: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for a in actions:
        t = a["created_at"]
        if current is not None and t >= current["opened"] + deadline_s:
            current.update(closed=current["opened"] + deadline_s, by="deadline")
            rounds.append(current)
            current = None
        if current is None:
            current = {"opened": t, "ids": [], "acted": set()}
        current["ids"].append(a["message_id"])
        if not only_speech(a["content"].strip()):
            current["acted"].add(user_id(a))
        if party <= current["acted"]:
            current.update(closed=t, by="everyone")
            rounds.append(current)
            current = None
    if current is not None:
        current.update(closed=current["opened"] + deadline_s, by="deadline")
        rounds.append(current)
    for r in rounds:
        del r["acted"]
    return rounds


def recorded_table(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The human table's figures (see the module docstring)."""
    kinds = [expected_kind(m) for m in messages]
    human = [m for m, k in zip(messages, kinds, strict=True) if k not in ("bot", "prefix")]
    narration = runs_of(human, HUMAN_DM)
    acts = [m for m, k in zip(messages, kinds, strict=True) if k == "act"]
    dm_acts = [m for m in acts if m["author_name"] == HUMAN_DM]
    quoted = runs_of([m for m in acts if m["author_name"] != HUMAN_DM or m["content"].startswith(">")], HUMAN_DM)
    initiative, stepped_back, last_command = 0, 0, ""
    for m in messages:
        if not m["author_bot"] and m["content"].startswith("!"):
            last_command = m["content"].strip().lower()
        elif m["author_bot"] and m["content"].startswith("**Initiative"):
            back = re.match(r"!(i|init)\s+prev", last_command) is not None
            initiative += not back
            stepped_back += back
    player_acts = [m for m in acts if m["author_name"] != HUMAN_DM]
    # how long a player's action waited for the human DM's next narration (unanswered at the log's end aside)
    waits, unanswered = [], 0
    for a in player_acts:
        after = [m["created_at"] for m in dm_acts if m["created_at"] > a["created_at"]]
        if after:
            waits.append(after[0] - a["created_at"])
        else:
            unanswered += 1
    return {
        "messages": len(messages), "recorded_minutes": round((messages[-1]["created_at"] - messages[0]["created_at"])
                                                             / 60, 1),
        "intake_kinds": {k: kinds.count(k) for k in ("bot", "prefix", "ooc", "empty", "act")},
        "in_character_player_messages": len(player_acts),
        "human_dm_in_character_messages": len(dm_acts),
        "human_dm_narration_runs": len(narration),
        "human_dm_narration_run_messages": sum(len(r) for r in narration),
        "human_dm_blockquote_narration_runs": len(quoted),
        "human_dm_blockquote_narration_messages": sum(len(r) for r in quoted),
        "initiative_turns": initiative, "initiative_posts_stepped_back": stepped_back,
        "human_dm_longest_wait_s": round(max(waits), 1),
        "human_dm_median_wait_s": round(statistics.median(waits), 1),
        "player_actions_after_the_last_dm_post": unanswered,
    }


# --- the simulation's parts --------------------------------------------------------------------------
class ClockedModel:
    """An in-process model: answers each call with a short narration after ``latency`` seconds on the
    manual clock. Counts turn calls and memory-fold calls."""

    def __init__(self, clock: Any, latency: float) -> None:
        self.clock, self.latency = clock, latency
        self.turn_calls = 0
        self.fold_calls = 0
        self.waiting = 0

    async def chat(self, messages: list[dict[str, Any]], *, model: str | None = None, **kw: Any) -> Any:
        from bot.game.memory import SUMMARY_MARKER
        from bot.llm.types import ChatResult, Usage

        fold = str(messages[0].get("content", "")).startswith(SUMMARY_MARKER)
        if fold:
            self.fold_calls += 1
        else:
            self.turn_calls += 1
        self.waiting += 1
        try:
            await self.clock.wait(asyncio.Event(), self.clock.now() + self.latency)
        finally:
            self.waiting -= 1
        text = ("Earlier, the party fought a sea hag among the murky pools." if fold
                else "The hag cackles and the black water stirs. What do you do?")
        return ChatResult(text=text, usage=Usage(prompt_tokens=1500, completion_tokens=15), cost_usd=0.0002,
                          model=model or "gpt-4o-mini")


class TimedNarrator:
    """Records, on the manual clock, when the DM starts composing a reply (``thinking``) and when each
    reply arrives, with the actions it answers; counts the round reminders."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.started: float | None = None
        self.turns: list[dict[str, Any]] = []
        self.reminders = 0
        self.other_notices: list[str] = []

    async def deliver(self, reply: Any) -> None:
        if reply.kind == "notice":
            if reply.text.startswith("⏳"):
                self.reminders += 1
            else:
                self.other_notices.append(reply.text)
            return
        now = self.clock.now()
        self.turns.append({"started": self.started if self.started is not None else now, "delivered": now,
                           "answered": list(reply.answered_message_ids), "kind": reply.kind})

    def stream(self, head: Any) -> None:
        return None

    async def show_tracker(self, channel_id: int, campaign_id: int, view: Any) -> None:
        pass

    @contextlib.asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        self.started = self.clock.now()
        yield


async def settle(game: Any, model: ClockedModel, clock: Any) -> None:
    """Let the core run (real time) until nothing can happen without the clock moving."""
    loop = asyncio.get_running_loop()
    end = loop.time() + SETTLE_TIMEOUT_S
    calm = 0
    while True:
        await asyncio.sleep(0 if calm else 0.0005)
        lives = list(game.registry.sessions.values())
        blocked = sum(live.state.busy + live.memory.running for live in lives)
        idle = all(live.state.busy or live.worker.quiet for live in lives)
        if idle and clock.due() == 0 and blocked == model.waiting:
            calm += 1
            if calm >= 3:
                return
        else:
            calm = 0
        if loop.time() > end:
            raise TimeoutError("the game core did not settle")


async def advance_to(t: float, game: Any, model: ClockedModel, clock: Any, seen: Any) -> None:
    """Move the clock to ``t``, stopping at every deadline on the way (windows, rounds, model calls)."""
    await settle(game, model, clock)
    seen()
    while (nxt := clock.next_deadline()) is not None and nxt <= t:
        clock.set(nxt)
        await settle(game, model, clock)
        seen()
    clock.set(t)
    await settle(game, model, clock)
    seen()


# --- one replay --------------------------------------------------------------------------------------
async def replay(messages: list[dict[str, Any]], pace: str | None, tmp: Path) -> dict[str, Any]:
    """Replay ``messages`` with the campaign's pace ``pace`` (None: the server's default, ``auto``).
    The rounds of the party's posts are counted from the first action the bot took under rounds
    (``auto`` starts live), or over the whole session when it never did."""
    from bot.config import load_settings
    from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
    from bot.game.core import Game
    from bot.game.turns import ManualClock
    from bot.store import Database, Store

    first = messages[0]["created_at"]
    clock = ManualClock(0.0, wall_origin=first)
    model = ClockedModel(clock, LATENCY)
    narrator = TimedNarrator(clock)
    where, gm = ChannelRef(1, CHANNEL), Actor(1, "gm", is_admin=True)
    settings = load_settings(None, data_dir=str(tmp), openai_api_key="sk-bench", llm_max_attempts=1, pace="auto",
                             turn_mode="batch", turn_window_seconds=6.0, turn_extend_seconds=2.0,
                             turn_max_window_seconds=20.0, player_cooldown_seconds=2.0)  # the defaults, pinned
    fed = [m for m in messages if m["author_name"] != HUMAN_DM]
    actions = [m for m in fed if expected_kind(m) == "act"]
    players = sorted({m["author_name"] for m in actions})
    posted: dict[int, float] = {}
    reasons: dict[str, int] = {}
    rounds_opened: list[float] = []
    modes: list[tuple[float, str]] = []
    gaps: list[float] = []
    in_combat = False
    async with Database.open(settings.database_path, migrate=True) as db:
        game = Game(store=Store(db), llm=model, settings=settings, narrator=narrator, clock=clock)
        await game.start()
        try:
            await game.start_campaign(where, gm, title="FIREBALL at its pace", setting="A murky cave of pools")
            names = {m["author_name"]: user_id(m) for m in actions}
            for i, name in enumerate(players):
                await game.join(where, Actor(names[name], name), CharacterSheetInput(f"Hero{i}", "Fighter", "Human"))
            if pace is not None:
                await game.set_pace(where, gm, pace=pace)
            live = await game.registry.require(CHANNEL)
            session = live.state

            def seen() -> None:
                nonlocal in_combat
                r = session.pace.round
                if r is not None and (not rounds_opened or rounds_opened[-1] != r.opened_at):
                    rounds_opened.append(r.opened_at)
                mode = "rounds" if session.rounds() else "live"
                if not modes or modes[-1][1] != mode:
                    modes.append((clock.now(), mode))
                in_combat = in_combat or session.encounter is not None
                gap = session.pace.median_gap()
                if gap is not None:
                    gaps.append(gap)

            seen()
            for m in fed:
                await advance_to(m["created_at"] - first, game, model, clock, seen)
                intake = await game.handle_message(IncomingMessage(
                    guild_id=1, channel_id=CHANNEL, author_id=user_id(m), author_name=m["author_name"],
                    content=m["content"], message_id=m["message_id"], author_is_bot=m["author_bot"],
                    created_at=None))  # stamped with the clock's wall(): the recorded time
                reasons[intake.reason] = reasons.get(intake.reason, 0) + 1
                if intake.status == "queued":
                    posted[m["message_id"]] = clock.now()
                seen()
            # past the last possible deadline, so nothing stays pending
            await advance_to(clock.now() + session.pace.settings.deadline_s + 60, game, model, clock, seen)
            pending = len(session.pending)
            median_gap = session.pace.median_gap()
            deadline_s = session.pace.settings.deadline_s
        finally:
            await game.close()

    turns = [t for t in narrator.turns if t["kind"] == "turn"]
    answered: dict[int, dict[str, Any]] = {}
    answered_twice = 0
    for t in turns:
        for i in t["answered"]:
            answered_twice += i in answered
            answered[i] = t
    waits_to_start = [answered[i]["started"] - at for i, at in posted.items() if i in answered]
    waits_to_reply = [answered[i]["delivered"] - at for i, at in posted.items() if i in answered]
    switched = next((t for t, mode in modes if mode == "rounds"), None)
    pool = actions if switched is None else [a for a in actions if posted.get(a["message_id"], -1.0) >= switched]
    pool_ids = {a["message_id"] for a in pool}
    rounds_expected = party_rounds(pool, {user_id(a) for a in actions}, deadline_s)
    per_round = [len({id(answered[i]) for i in r["ids"] if i in answered}) for r in rounds_expected]
    round_turns = [t for t in turns if pool_ids & set(t["answered"])]
    matches = [t["answered"] for t in round_turns] == [r["ids"] for r in rounds_expected]
    # when the DM started answering each round, against when the rule says the round closes
    late = [round(t["started"] - (r["closed"] - first), 1) for t, r in zip(round_turns, rounds_expected, strict=True)
            ] if matches else None
    result: dict[str, Any] = {
        "pace": pace or "auto (server default)",
        "dm_turns": len(turns),
        "model_calls": model.turn_calls + model.fold_calls, "model_calls_memory_folds": model.fold_calls,
        "actions_fed": len(actions), "actions_queued": len(posted),
        "actions_unanswered": len(set(posted) - set(answered)) + pending, "actions_answered_twice": answered_twice,
        "intake": reasons,
        "longest_wait_s": round(max(waits_to_start), 1),
        "longest_wait_to_reply_s": round(max(waits_to_reply), 1),
        "median_wait_s": round(statistics.median(waits_to_start), 1),
        "longest_wait_over_deadline_s": round(max(waits_to_start) - deadline_s, 1),
        "rounds_opened": len(rounds_opened),
        "party_rounds_from_s": round(switched, 1) if switched is not None else None,
        "party_rounds": len(rounds_expected),
        "max_turns_per_party_round": max(per_round),
        "turns_per_party_round": per_round,
        "turns_match_party_rounds": matches,
        "turn_start_after_round_close_s": late,
        "reminders": narrator.reminders,
        "other_notices": len(narrator.other_notices),
        "modes": [[round(t, 1), mode] for t, mode in modes],
        "median_gap_s_at_end": None if median_gap is None else round(median_gap, 1),
        "median_gap_s_min_max": [round(min(gaps), 1), round(max(gaps), 1)] if gaps else None,
        "bot_in_combat": in_combat,
    }
    return result


async def bench_pace() -> dict[str, Any]:
    """The recorded table's figures and the replays (see the module docstring)."""
    started = time.perf_counter()
    messages = load_messages()
    table = recorded_table(messages)
    actions = [m for m in messages if expected_kind(m) == "act" and m["author_name"] != HUMAN_DM]
    party = {user_id(m) for m in actions}
    expected = party_rounds(actions, party, DEADLINE_S)
    first = messages[0]["created_at"]
    table["party_rounds"] = len(expected)
    table["party_rounds_detail"] = [
        {"opened_s": round(r["opened"] - first, 1), "closed_s": round(r["closed"] - first, 1), "by": r["by"],
         "actions": len(r["ids"])} for r in expected]
    results: dict[str, Any] = {"recorded": table, "model_latency_s": LATENCY, "round_deadline_s": DEADLINE_S}
    for name, pace in (("live", "live"), ("auto", None), ("rounds", "rounds")):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = await asyncio.wait_for(replay(messages, pace, Path(tmp)), MODE_TIMEOUT_S)
    # not marked: the same table ten times slower (a forum's pace: the median gap 11 to 36 minutes), where
    # auto has the evidence to turn to rounds after its first few posts
    slow = [{**m, "created_at": first + (m["created_at"] - first) * SLOW} for m in messages]
    with tempfile.TemporaryDirectory() as tmp:
        results["auto_10x_slower"] = await asyncio.wait_for(replay(slow, None, Path(tmp)), MODE_TIMEOUT_S)
    rounds, auto, live = results["rounds"], results["auto"], results["live"]
    results.update({
        "live_turns": live["dm_turns"], "auto_turns": auto["dm_turns"], "rounds_turns": rounds["dm_turns"],
        "rounds_model_calls": rounds["model_calls"],
        "rounds_max_turns_per_round": rounds["max_turns_per_party_round"],
        "rounds_longest_wait_over_deadline_s": rounds["longest_wait_over_deadline_s"],
        "actions_unanswered": sum(results[k]["actions_unanswered"] + results[k]["actions_answered_twice"]
                                  for k in ("live", "auto", "rounds", "auto_10x_slower")),
        "wall_seconds": round(time.perf_counter() - started, 2),
    })
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(bench_pace()), indent=2))
