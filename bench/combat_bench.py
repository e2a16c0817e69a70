"""Benchmark of combat (issue 11): a 10-combatant, 20-round fight in each of 200 channels at once,
through the real game core (in process, real SQLite, a scripted model that plays the monsters with
the combat tools as the encounter block tells it). Figures: the bot's overhead per turn (window
closed -> reply handed to the narrator, minus the model's time) and tracker updates per turn.

Run through ``python -m bench --only combat``.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_FOLLOW = re.compile(r"play the monsters whose turns follow \(([^)]*)\)")


_MONSTER_TURN = re.compile(r"It is ([^']+)'s turn: play it with the attack tool(?: and call end_turn, then the "
                           r"monsters after it \(([^)]*)\))?")
_TARGET = re.compile(r"stop when it is (\w+)'s turn")


def _dm(messages: list[dict[str, Any]]) -> Any:
    """The scripted DM: as the encounter block says, resolve the acting PC's turn or play the
    monster whose turn it is, then the monsters named after it (an attack on the next PC each,
    then end_turn), then narrate."""
    from tests.support.doubles import reply

    last = str(messages[-1].get("content", ""))
    if messages[-1].get("role") == "tool" or "already used these tools" in last:
        return reply("Steel rings on steel; the goblins press in, and the fight goes on.")
    target = _TARGET.search(last)
    victim = target.group(1) if target else "Aria"
    calls: list[tuple[str, dict[str, Any]]] = []
    acting = re.search(r"This turn resolves (\w+)'s action", last)
    monster = _MONSTER_TURN.search(last)
    if acting is not None:
        calls.append(("end_turn", {}))
        followers = _FOLLOW.search(last)
        names = followers.group(1).split(",") if followers else []
    elif monster is not None:
        names = [monster.group(1), *(monster.group(2).split(",") if monster.group(2) else [])]
    else:
        return reply("The goblins circle, waiting.")
    for name in (n.strip() for n in names):
        if name and name != "...":
            calls += [("attack", {"attacker": name, "target": victim}), ("end_turn", {})]
    return reply("", *calls)


class CountingNarrator:
    """Counts replies and tracker updates per channel; wakes waiters per channel."""

    def __init__(self) -> None:
        self.events: dict[int, asyncio.Event] = {}
        self.trackers: Counter[int] = Counter()
        self.replies: Counter[int] = Counter()

    async def deliver(self, reply: Any) -> None:
        """Count a reply (notices too) and wake the channel's waiter."""
        self.replies[reply.channel_id] += 1
        self.events.setdefault(reply.channel_id, asyncio.Event()).set()

    def stream(self, head: Any) -> None:
        """No streamed replies: the core delivers each reply whole (``deliver`` counts it)."""
        return None

    async def show_tracker(self, channel_id: int, campaign_id: int, view: Any) -> None:
        """Count a tracker update."""
        self.trackers[channel_id] += 1

    @asynccontextmanager
    async def thinking(self, channel_id: int) -> AsyncIterator[None]:
        """Nothing to show while thinking."""
        yield

    async def wait(self, channel_id: int) -> None:
        """Until the channel's next reply."""
        event = self.events.setdefault(channel_id, asyncio.Event())
        await asyncio.wait_for(event.wait(), 60)
        event.clear()


class SlowModel:
    """The scripted model answering after ``latency_s`` seconds, like an endpoint (bench only)."""

    def __init__(self, inner: Any, latency_s: float) -> None:
        self.inner = inner
        self.latency_s = latency_s

    async def chat(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
        """The inner model's answer, ``latency_s`` seconds later."""
        await asyncio.sleep(self.latency_s)
        return await self.inner.chat(messages, **kw)


async def bench_combat(channels: int = 200, rounds: int = 20, *, latency_s: float = 1.0,
                       think_s: tuple[float, float] = (1.0, 4.0)) -> dict[str, Any]:
    """Run the fights (see module docstring) with a model answering in ``latency_s`` seconds and
    players taking ``think_s`` seconds (uniform) between turns, and return the figures."""
    import random

    from bot.config import load_settings
    from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
    from bot.game.core import Game
    from bot.llm.tokens import count_tokens
    from bot.store import Database, Store
    from tests.support.doubles import ScriptedModel

    narrator = CountingNarrator()
    model = ScriptedModel(default=_dm)
    gm = Actor(1, "gm", is_admin=True)
    players = (Actor(101, "ann"), Actor(102, "bob"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=tmp, turn_mode="mention", player_cooldown_seconds=0,
                                 max_tool_rounds=2)
        async with Database.open(settings.database_path, migrate=True) as db:
            game = Game(store=Store(db), llm=SlowModel(model, latency_s), settings=settings, narrator=narrator,
                        count_tokens=count_tokens)
            rng = random.Random(3)
            await game.start()
            wheres = [ChannelRef(1, 1000 + c) for c in range(channels)]
            for where in wheres:
                await game.start_campaign(where, gm, title="The Goblin Warrens")
                for p, name in zip(players, ("Aria", "Borin"), strict=True):
                    await game.join(where, p, CharacterSheetInput(name, "Fighter", "Human", max_hp=999, ac=30))
                await game.combat_add(where, gm, "Goblin", 8)
                await game.combat_add(where, gm, "Aria")
                await game.combat_add(where, gm, "Borin")
                await game.combat_next(where, gm)
            game.turn_timings.clear()
            narrator.trackers.clear()
            message_id = 0
            started = time.perf_counter()

            async def play(where: ChannelRef) -> int:
                nonlocal message_id
                turns = 0
                await asyncio.sleep(rng.uniform(*think_s))  # tables do not all start in the same millisecond
                while True:
                    live = game.registry.sessions[where.channel_id].state
                    fight = live.encounter
                    if fight is None or fight.round > rounds:
                        return turns
                    active = fight.active
                    pid = active.player_id if active is not None and active.player_id else players[0].user_id
                    who = next(p for p in players if p.user_id == pid)
                    message_id += 1
                    await game.handle_message(IncomingMessage(1, where.channel_id, who.user_id, who.name,
                                                              f"{who.name} swings at the nearest goblin",
                                                              message_id=message_id, mentions_bot=True))
                    await narrator.wait(where.channel_id)
                    turns += 1
                    await asyncio.sleep(rng.uniform(*think_s))

            per_channel = await asyncio.gather(*(play(w) for w in wheres))
            wall = time.perf_counter() - started
            overheads = sorted(t.overhead_s * 1000 for t in game.turn_timings)
            await game.close()
    turns = sum(per_channel)
    most_trackers = max(narrator.trackers[w.channel_id] / max(1, n) for w, n in zip(wheres, per_channel, strict=True))
    return {"channels": channels, "rounds": rounds, "combatants": 10, "turns": turns, "wall_s": round(wall, 1),
            "overhead_ms_median": round(statistics.median(overheads), 2),
            "overhead_ms_p99": round(overheads[int(0.99 * len(overheads))], 2),
            "tracker_updates_per_turn_max": round(most_trackers, 2),
            "model_calls": len(model.requests)}
