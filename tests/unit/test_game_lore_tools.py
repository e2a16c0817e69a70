"""The model keeps the lorebook through its tools, and each turn's prompt remembers what is named:
real SQLite in a temp dir, a scripted model, a manual clock (the ``make_env`` pattern of
test_game_sessions.py)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
from bot.game.core import Game
from bot.game.lore import HEADER
from bot.game.lore_tools import PEOPLE_NOTE
from bot.game.session import GameSession, LiveSession
from bot.game.turns import ManualClock
from bot.llm.errors import ServiceUnavailable
from bot.models import LoreEntry, LoreKind, QuestStatus
from bot.store import Database, Store
from tests.support.doubles import RecordingNarrator, ScriptedModel, advance, reply

WHERE = ChannelRef(guild_id=7, channel_id=70)
GM = Actor(1, "gm", is_admin=True)
ANN = Actor(101, "ann")


def words(text: str, model: str = "") -> int:
    """A deterministic stand-in tokenizer: one token per word."""
    return len(text.split())


@dataclass
class Env:
    game: Game
    model: ScriptedModel
    narrator: RecordingNarrator
    clock: ManualClock
    store: Store
    settings: Settings
    ids: int = 1000

    async def turn(self, text: str) -> None:
        """Ann acts; the window closes (6 s) and the turn is answered."""
        self.ids += 1
        before = len(self.narrator.turns)
        await self.game.handle_message(IncomingMessage(
            guild_id=WHERE.guild_id, channel_id=WHERE.channel_id, author_id=ANN.user_id, author_name=ANN.name,
            content=text, message_id=self.ids))
        await advance(self.game, self.clock, 6.0)
        await self.narrator.wait_for(before + 1, timeout=5.0)

    def live(self) -> LiveSession:
        return self.game.registry.sessions[WHERE.channel_id]

    def session(self) -> GameSession:
        return self.live().state

    async def lore(self) -> dict[str, LoreEntry]:
        """The live lorebook by name; the session's cache must hold the same entries (its naming
        turns are kept by the pipeline's ``LoreRecall``, not in the cache)."""
        live = await self.store.lore.live(self.session().campaign.id)
        assert [replace(e, last_named_turn=0) for e in self.session().lore] \
            == [replace(e, last_named_turn=0) for e in live]
        return {e.name: e for e in live}

    def last_prompt(self) -> str:
        """The final user message of the newest turn request (party, lore, actions)."""
        first = next(r for r in reversed(self.model.turn_requests)
                     if r.tools is not None and r.messages[-1]["role"] == "user")
        content = first.messages[-1]["content"]
        assert isinstance(content, str)
        return content

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool result sent back to the model, in order."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.model.turn_requests:
            for m in r.messages:
                if m.get("role") == "tool":
                    seen[m["tool_call_id"]] = json.loads(m["content"])
        return list(seen.values())


@contextlib.asynccontextmanager
async def make_env(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    options: dict[str, Any] = dict(data_dir=str(tmp_path), player_cooldown_seconds=0, turn_window_seconds=6,
                                   turn_extend_seconds=2, turn_max_window_seconds=20)
    options.update(overrides)
    settings = load_settings(None, **options)
    clock = ManualClock(1000.0)
    narrator = RecordingNarrator()
    model = ScriptedModel()
    async with Database.open(settings.database_path, migrate=True) as db:
        store = Store(db)
        game = Game(store=store, llm=model, settings=settings, narrator=narrator, clock=clock, count_tokens=words)
        await game.start()
        try:
            env = Env(game, model, narrator, clock, store, settings)
            await game.start_campaign(WHERE, GM, title="The Sunken Crypt", setting="A drowned temple", tone="grim")
            await game.join(WHERE, ANN, CharacterSheetInput("Aria", "Rogue", "Elf"))
            yield env
        finally:
            await game.close(grace_s=0)


def block_of(prompt: str) -> str:
    """The lore block inside a turn's last message ("" when there is none)."""
    if HEADER not in prompt:
        return ""
    return prompt[prompt.index(HEADER):].split("\n\n")[0]


async def test_remember_creates_updates_and_reveals_entries(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        env.model.push(reply("", ("remember", {"name": "Mira", "kind": "npc", "secret": True,
                                               "description": "Innkeeper; secretly a spy."}),
                             ("remember", {"name": "Find the crown", "kind": "quest", "description": "For the duke."})),
                       reply("Mira pours you a drink."))
        await env.turn("I ask the innkeeper her name")
        lore = await env.lore()
        assert sorted(lore) == ["Find the crown", "Mira"]
        mira = lore["Mira"]
        assert (mira.kind, mira.secret, mira.description, mira.created_by_kind, mira.created_turn) \
            == ("npc", True, "Innkeeper; secretly a spy.", "dm", 1)
        assert (lore["Find the crown"].status, lore["Find the crown"].token_count) == ("open", 3)
        assert env.tool_results() == [
            {"ok": True, "created": {"name": "Mira", "kind": "npc", "aliases": [],
                                     "description": "Innkeeper; secretly a spy.", "secret": True}},
            {"ok": True, "created": {"name": "Find the crown", "kind": "quest", "aliases": [],
                                     "description": "For the duke.", "secret": False, "status": "open"}}]

        env.model.push(reply("", ("remember", {"name": "mira", "aliases": ["the innkeeper"], "secret": False}),
                             ("update_quest", {"quest": "find the crown", "status": "done", "note": "Found it."}),
                             ("remember", {"name": "Nobody"})),
                       reply("Mira confesses."))
        await env.turn("I tell Mira what I know")
        assert "- [secret] Mira (npc): Innkeeper; secretly a spy." in block_of(env.last_prompt())
        lore = await env.lore()
        assert (lore["Mira"].secret, lore["Mira"].aliases) == (False, ("the innkeeper",))
        crown = lore["Find the crown"]
        assert (crown.status, crown.description) == ("done", "For the duke. Found it.")
        results = env.tool_results()[2:]
        assert results[0] == {"ok": True, "revealed": True, "updated": {
            "name": "Mira", "kind": "npc", "aliases": ["the innkeeper"], "description": "Innkeeper; secretly a spy.",
            "secret": False}}
        assert results[1]["quest"]["status"] == "done" and results[1]["ok"] is True
        assert results[2] == {"error": "nothing is recorded as 'Nobody' yet; give a kind (npc, place, faction, "
                                       "item, quest, fact) to record it"}

        await env.turn("I wave at the innkeeper")
        assert block_of(env.last_prompt()) == f"{HEADER}\n- Mira (npc; also: the innkeeper): Innkeeper; secretly a spy."


async def test_an_entry_people_edited_keeps_their_words_but_quest_status_moves(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        cid = env.session().campaign.id
        seeds: tuple[tuple[str, LoreKind, QuestStatus | None], ...] = (("Bram", "npc", None), ("Rats", "quest", "open"))
        for name, kind, status in seeds:
            made = await env.store.lore.create(campaign_id=cid, kind=kind, name=name, description="As ann wrote.",
                                               status=status, author_kind="player", author_id=ANN.user_id,
                                               author_name="ann", turn=0)
            env.session().put_lore(made)
        env.model.push(reply("", ("remember", {"name": "Bram", "description": "A liar."}),
                             ("update_quest", {"quest": "Rats", "status": "failed", "note": "They fled."})),
                       reply("Bram shrugs."))
        await env.turn("I ask Bram about the rats")
        lore = await env.lore()
        assert (lore["Bram"].description, lore["Rats"].description, lore["Rats"].status) \
            == ("As ann wrote.", "As ann wrote.", "failed")
        bram, rats = env.tool_results()
        assert bram["unchanged"] is True and bram["note"] == PEOPLE_NOTE
        assert rats["note"] == PEOPLE_NOTE + "; the note was not added" and rats["quest"]["status"] == "failed"


async def test_an_entry_named_at_turn_10_returns_at_turn_1500_only_when_named(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        cid = env.session().campaign.id
        await env.store.db.execute("UPDATE campaigns SET turn = 9 WHERE id = ?", (cid,))
        await env.game.registry.drop(env.live())
        env.model.push(reply("", ("remember", {"name": "Vex", "kind": "npc", "description": "A red-cloaked thief."})),
                       reply("Vex vanishes into the crowd."))
        await env.turn("I chase the thief")
        assert env.narrator.turns[-1].turn == 10
        assert (await env.lore())["Vex"].last_named_turn == 10
        now = time.time()
        async with env.store.db.transaction() as conn:  # the long gap, seeded: turns 11..1498
            await conn.executemany(
                "INSERT INTO story_messages (campaign_id, turn, role, author_id, author_name, character_name,"
                " content, token_count, state, created_at) VALUES (?, ?, 'dm', NULL, 'DM', NULL, ?, 4, 'answered', ?)",
                [(cid, t, "The road goes on.", now) for t in range(11, 1499)])
            await conn.execute("UPDATE campaigns SET turn = 1498 WHERE id = ?", (cid,))
        await env.game.registry.drop(env.live())

        await env.turn("I look around the market")
        assert env.narrator.turns[-1].turn == 1499
        assert block_of(env.last_prompt()) == ""
        assert all("Vex" not in str(m["content"]) for m in env.model.turn_requests[-1].messages)
        await env.turn("Is that VEX over there?")
        assert env.narrator.turns[-1].turn == 1500
        assert block_of(env.last_prompt()) == f"{HEADER}\n- Vex (npc): A red-cloaked thief."
        assert (await env.lore())["Vex"].last_named_turn == 1500


async def test_the_lore_block_stays_within_its_budget(tmp_path: Path) -> None:
    async with make_env(tmp_path, lore_token_budget=60) as env:
        cid = env.session().campaign.id
        for i in range(12):
            made = await env.store.lore.create(campaign_id=cid, kind="npc", name=f"Guard{i}",
                                               description="A bored guard of the north gate.", author_kind="dm",
                                               author_id=None, author_name="DM", turn=0)
            env.session().put_lore(made)
        await env.turn("I bribe " + ", ".join(f"Guard{i}" for i in range(12)))
        block = block_of(env.last_prompt())
        lines = block.split("\n")
        assert words(block) <= 60 and lines[0] == HEADER
        assert words(HEADER) == 25  # and 10 words a line: 3 lines fit in 60, in the order named
        assert lines[1:] == [f"- Guard{i} (npc): A bored guard of the north gate." for i in range(3)]


async def test_undo_takes_back_what_the_undone_turn_recorded(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        env.model.push(reply("", ("remember", {"name": "Mira", "kind": "npc", "description": "Innkeeper."})),
                       reply("Hello."))
        await env.turn("Hi innkeeper")
        env.model.push(reply("", ("remember", {"name": "Mira", "description": "Innkeeper and spy."}),
                             ("remember", {"name": "Crown", "kind": "quest"})),
                       reply("Secrets."))
        await env.turn("Tell me about Mira")
        assert sorted(await env.lore()) == ["Crown", "Mira"]
        result = await env.game.undo(WHERE, GM)
        assert result.turn == 2
        lore = await env.lore()
        assert sorted(lore) == ["Mira"] and lore["Mira"].description == "Innkeeper."
        await env.turn("What about the Crown and Mira?")
        assert block_of(env.last_prompt()) == f"{HEADER}\n- Mira (npc): Innkeeper."


async def test_a_failed_turn_keeps_none_of_its_lore(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        env.model.push(reply("", ("remember", {"name": "Mira", "kind": "npc"})), ServiceUnavailable("down"))
        await env.game.handle_message(IncomingMessage(
            guild_id=WHERE.guild_id, channel_id=WHERE.channel_id, author_id=ANN.user_id, author_name=ANN.name,
            content="Hi", message_id=5000))
        await advance(env.game, env.clock, 6.0)
        await env.narrator.wait_for(1, notices=True, timeout=5.0)
        assert await env.lore() == {}
