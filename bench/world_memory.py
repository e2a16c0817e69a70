"""Benchmarks of the world memory (issue 10): full-text search over a large campaign, choosing a
turn's lore among many entries, and recall of old entries through the real turn pipeline.

Run through ``python -m bench --only search|lore|recall``; figures join ``bench/results/latest.json``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = (
    "lantern", "crypt", "marsh", "harbour", "goblin", "tavern", "ledger", "silver", "oath", "storm",
    "cellar", "relic", "idol", "candle", "rope", "bridge", "whisper", "raven", "tide", "forge", "banner",
    "chalice", "dagger", "mirror", "altar", "hound", "lighthouse", "orchard",
)
NAMES = (
    "Marta", "Borin", "Aria", "Cyra", "Tomas", "Ilse", "Garrick", "Odo", "Wren", "Selka", "Hadrik", "Yvaine",
    "Brannoc", "Lisette", "Corwin", "Mirela", "Anselm", "Dagny", "Fenwick", "Ysolde",
)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` (0..1) quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench_search(messages: int) -> dict[str, Any]:
    """Median and p99 of ``SearchStore.search`` (ms) over one campaign with ``messages`` story
    messages, 200 chapters and 1,000 lore entries."""
    from bot.store import Database, Store

    rng = random.Random(7)
    # story text drawn from a Zipf-like vocabulary (a few very common words, a long tail), as prose is
    vocabulary = [*WORDS] + [f"{a}{b}" for a in ("bar", "cel", "dun", "fen", "gal", "hol", "mor", "tam")
                          for b in ("ric", "wen", "dor", "ith", "sar", "lun", "bek", "ova")] * 1
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]

    def prose(n: int) -> str:
        return " ".join(rng.choices(vocabulary, weights, k=n))

    with tempfile.TemporaryDirectory() as tmp:
        async with Database.open(Path(tmp) / "db.sqlite3", migrate=True) as db:
            now = time.time()
            await db.execute("INSERT INTO campaigns (id, guild_id, channel_id, title, status, created_by, created_at)"
                             " VALUES (1, 1, 1, 'Big', 'active', 1, ?)", (now,))
            rows = []
            for i in range(messages):
                text = prose(14) + f" {rng.choice(NAMES)}."
                rows.append((1, i // 4 + 1, "dm" if i % 4 == 3 else "player", "DM" if i % 4 == 3 else "p",
                             text, 20, "answered", now))
            started = time.perf_counter()
            await db.executemany("INSERT INTO story_messages (campaign_id, turn, role, author_name, content,"
                                 " token_count, state, created_at) VALUES (?,?,?,?,?,?,?,?)", rows)
            await db.executemany(
                "INSERT INTO chapters (campaign_id, number, first_turn, last_turn, through_message_id, started_at,"
                " ended_at, content, token_count, created_at) VALUES (1,?,?,?,?,0,0,?,300,0)",
                [(n, n * 100, n * 100 + 99, n * 400, prose(200)) for n in range(1, 201)])
            await db.executemany(
                "INSERT INTO lore_entries (campaign_id, kind, name, description, created_by_kind, created_at,"
                " updated_at) VALUES (1, 'npc', ?, ?, 'dm', 0, 0)",
                [(f"{rng.choice(NAMES)} {i}", prose(20)) for i in range(1000)])
            seeded_s = time.perf_counter() - started
            store = Store(db)
            # what a table asks: a name and a word or two of what happened
            queries = [f"{rng.choice(NAMES)} {rng.choice(vocabulary[8:])}" for _ in range(100)]
            times = await _timed(store, queries)
            # the worst case: one of the commonest words alone (matches a large share of the story)
            common = await _timed(store, vocabulary[:5] * 4)
    return {"messages": messages, "queries": len(queries), "seed_and_index_s": round(seeded_s, 1),
            "search_ms_median": round(statistics.median(times), 2), "search_ms_p99": round(percentile(times, 0.99), 2),
            "common_word_ms_median": round(statistics.median(common), 2)}


async def _timed(store: Any, queries: list[str]) -> list[float]:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        await store.search.search(1, q, limit=10)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_lore_choice(entries: int, turns: int = 500) -> dict[str, Any]:
    """Choosing a turn's lore (``LoreRecall.choose``) among ``entries`` lorebook entries (two names
    each), ms per turn: median and p99 over ``turns`` turns of realistic text; and the one-off
    matcher build after a lorebook change."""
    from bot.game.lore import LoreRecall
    from bot.game.session import GameSession, TurnTimings
    from bot.llm.tokens import count_tokens
    from bot.models import Campaign, GuildConfig, LoreEntry

    rng = random.Random(11)
    lore = [LoreEntry(id=i + 1, campaign_id=1, kind="npc", name=f"{rng.choice(NAMES)} of {rng.choice(WORDS)}{i}",
                      aliases=(f"the {rng.choice(WORDS)} keeper {i}",),
                      description=" ".join(rng.choice(WORDS) for _ in range(25)), token_count=30,
                      last_named_turn=rng.randrange(1, 2000)) for i in range(entries)]
    campaign = Campaign(1, 1, 1, "Big", "", "", "active", 1, 0.0, 2000)
    config = GuildConfig(1, "gpt-4o-mini", 0.8, 700, "batch", 6.0, (), (), 0, 0, "classic", "teen")
    session = GameSession(campaign, config, [], None, [], [], timings=TurnTimings(2.0, 20.0), now=0.0, lore=lore)
    recall = LoreRecall()
    t0 = time.perf_counter()
    recall.matcher(session)
    build_ms = (time.perf_counter() - t0) * 1000

    def count(text: str) -> int:
        return count_tokens(text, "gpt-4o-mini")

    count("warm up the encoding")  # tiktoken loads its tables on the first count
    times = []
    for _ in range(turns):
        named = rng.sample(lore, 3)
        actions = [f"I ask {named[0].name} about the {rng.choice(WORDS)} and wave at {named[1].aliases[0]}.",
                   " ".join(rng.choice(WORDS) for _ in range(30))]
        recent = [" ".join(rng.choice(WORDS) for _ in range(60)) + f" {named[2].name}." for _ in range(6)]
        t0 = time.perf_counter()
        recall.choose(session, actions, recent, budget=600, count=count)
        times.append((time.perf_counter() - t0) * 1000)
    # the DM records someone new: the matcher grows by one small regex instead of a full compile
    session.put_lore(LoreEntry(id=entries + 1, campaign_id=1, kind="npc", name="Zorvath the New",
                               description="Arrived today.", token_count=4))
    t0 = time.perf_counter()
    recall.matcher(session)
    grow_ms = (time.perf_counter() - t0) * 1000
    return {"entries": entries, "turns": turns, "matcher_build_ms": round(build_ms, 1),
            "matcher_after_one_new_entry_ms": round(grow_ms, 2),
            "choose_ms_median": round(statistics.median(times), 3), "choose_ms_p99": round(percentile(times, 0.99), 3)}


# a DM reply of realistic length (the prompt asks for 80-250 words)
NARRATION = ("The street is busy; carts rattle past the forges and a bell rings twice from the harbour. "
             "Smoke hangs low over the roofs, and somewhere a hammer keeps a slow, patient beat. A boy runs "
             "past with a bundle of kindling, a dog at his heels, and the baker's shutters bang open. "
             "The smell of hot iron and wet stone is everywhere. Down the lane, two guards argue about the "
             "night watch, and an old woman feeds the gulls from a basket of crusts. What do you do?")


def _recall_name(k: int) -> str:
    return f"Zorvath{k:03d}"


async def bench_recall(turns: int, entries: int, probes: int, *, tools: bool) -> dict[str, Any]:
    """Recall through the real turn pipeline (in process, scripted model, real SQLite, tiktoken):
    a ``turns``-turn campaign in which ``entries`` NPCs are introduced over time (the model records
    each with ``remember`` when ``tools``, else only the memory folds' extraction keeps them), then
    ``probes`` turns in which a player names an NPC introduced at least a quarter of the campaign
    earlier. Figures: the share of probes whose entry (its description) is in that turn's prompt, and
    the prompt size at turn 100 and at the end (20-turn means, tokens)."""
    import json
    import re

    from bot.config import load_settings
    from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
    from bot.game.core import Game
    from bot.game.memory import SUMMARY_MARKER
    from bot.game.turns import ManualClock
    from bot.llm.tokens import count_message_tokens, count_tokens
    from bot.store import Database, Store
    from tests.support.doubles import RecordingNarrator, ScriptedModel, reply, settle

    every = max(1, (turns * 3 // 4) // entries)  # introductions spread over the first three quarters
    introduced: dict[int, int] = {}  # k -> turn

    def description(k: int) -> str:
        return f"{_recall_name(k)} is the smith of ward {k}, owes the party {k % 7 + 1} silver."

    def dm(messages: list[dict[str, Any]]) -> Any:
        last = str(messages[-1]["content"])
        if messages[-1]["role"] == "tool" or "already used these tools" in last:
            return reply("The forge glows; the smith nods and gets back to work.")
        found = re.search(r"We meet (Zorvath\d{3})", last)
        if found and tools:
            k = int(found.group(1)[7:])
            return reply("", ("remember", {"kind": "npc", "name": found.group(1), "description": description(k)}))
        return reply(NARRATION)

    def fold(messages: list[dict[str, Any]]) -> Any:
        names = sorted(set(re.findall(r"Zorvath\d{3}", str(messages[1]["content"]))))
        entities = [{"kind": "npc", "name": n, "description": description(int(n[7:]))} for n in names]
        # a chapter of realistic length: the fold asks for a few hundred tokens and models write them
        chapter = ("The party walked the wards and met the smiths " + ", ".join(names[:10]) + ". "
                   + "They crossed the market, haggled over rope and lamp oil, listened to a street preacher "
                     "warn of the tide, and slept at the inn by the bridge. " * 6)
        return reply(json.dumps({"chapter": chapter, "entities": entities}))

    model = ScriptedModel(default=dm, summarize=fold)
    narrator = RecordingNarrator()
    clock = ManualClock(0.0)
    where, gm = ChannelRef(1, 10), Actor(1, "gm", is_admin=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=tmp, turn_mode="mention", player_cooldown_seconds=0)
        async with Database.open(settings.database_path, migrate=True) as db:
            game = Game(store=Store(db), llm=model, settings=settings, narrator=narrator, clock=clock,
                        count_tokens=count_tokens)
            await game.start()
            await game.start_campaign(where, gm, title="The Smiths' Wards")
            await game.join(where, Actor(101, "ann"), CharacterSheetInput("Aria", "Rogue", "Elf"))
            sizes: dict[int, int] = {}
            parts: dict[int, tuple[int, int, int]] = {}  # system, history, final message
            shares: list[float] = []
            previous: list[dict[str, Any]] | None = None
            folds = 0
            hits = 0
            probe_ids = list(range(1, turns + probes + 1))
            rng = random.Random(5)
            started = time.perf_counter()
            for t in probe_ids:
                k = t // every if t % every == 0 and t // every < entries and t <= turns else None
                if t <= turns:
                    text = f"We meet {_recall_name(k)} at the forge" if k is not None else f"I walk ward {t} slowly"
                else:
                    old = [n for n, at in introduced.items() if at <= turns - turns // 4]
                    k_probe = rng.choice(old)
                    text = f"I ask around for {_recall_name(k_probe)}, what do they owe us?"
                before = len(model.turn_requests)
                await game.handle_message(IncomingMessage(1, 10, 101, "ann", text, message_id=t, mentions_bot=True))
                await settle(game, clock, timeout=30)
                if k is not None:
                    introduced[k] = t
                prompt = model.turn_requests[before].messages
                sizes[t] = count_message_tokens(prompt, "gpt-4o-mini")
                if previous is not None and len(model.summary_requests) == folds:  # no fold in between
                    shares.append(_prefix_share(json.dumps(previous), json.dumps(prompt), count_tokens))
                previous, folds = prompt, len(model.summary_requests)
                parts[t] = (count_tokens(str(prompt[0]["content"]), "gpt-4o-mini"),
                            count_message_tokens(prompt[1:-1], "gpt-4o-mini"),
                            count_tokens(str(prompt[-1]["content"]), "gpt-4o-mini"))
                if t > turns:
                    hits += description(k_probe) in str(prompt[-1]["content"])
            wall = time.perf_counter() - started
            await game.close()
    assert all(not str(r.messages[0]["content"]).startswith(SUMMARY_MARKER) for r in model.turn_requests)

    def mean20(end: int) -> float:
        return statistics.mean(sizes[t] for t in range(max(1, end - 19), end + 1))

    return {"turns": turns, "entries": len(introduced), "probes": probes, "model_records_lore": tools,
            "recall_share": round(hits / probes, 3), "prompt_mean20_turn_100": round(mean20(100)),
            "prompt_mean20_last_turn": round(mean20(turns)), "ratio": round(mean20(turns) / mean20(100), 3),
            "prefix_share_median": round(statistics.median(shares), 3),
            "parts_turn_100": parts[100], "parts_last_turn": parts[turns], "wall_s": round(wall, 1)}


def _prefix_share(a: str, b: str, count: Any) -> float:
    """The share of ``b``'s tokens that is a byte-identical prefix shared with ``a``."""
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return count(b[:common], "gpt-4o-mini") / max(1, count(b, "gpt-4o-mini"))
