"""The table's side of the lorebook, in-process: ``/lore`` permissions and secrets, revert of a wrong
edit, search with turns and snippets, recap by chapter and the export. Real SQLite in a temp dir, a
scripted model, a manual clock (the ``make_env`` pattern of test_game_sessions.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.errors import UserInputError
from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage, LoreEdit
from bot.game.core import Game
from bot.game.errors import NotAllowed, NotInParty
from bot.game.lorebook import find_entry, split_aliases
from bot.game.session import GameSession
from bot.game.turns import ManualClock
from bot.models import LoreEntry
from bot.store import ChapterDraft, Database, Store
from tests.support.doubles import RecordingNarrator, ScriptedModel, advance, reply, settle

WHERE = ChannelRef(guild_id=7, channel_id=70)
GM = Actor(1, "gm")  # the campaign's creator, not a server admin
ADMIN = Actor(9, "mod", is_admin=True)
ANN, BOB = Actor(101, "ann"), Actor(102, "bob")
NEWBIE = Actor(104, "dee")
NOT_FOUND_VEX = "The lorebook has no entry called “Lord Vex”. `/lore list` shows what it holds."
DAY = 1_700_000_000.0  # 2023-11-14 (UTC)


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

    async def act(self, who: Actor, text: str) -> Any:
        self.ids += 1
        return await self.game.handle_message(IncomingMessage(
            guild_id=WHERE.guild_id, channel_id=WHERE.channel_id, author_id=who.user_id, author_name=who.name,
            content=text, message_id=self.ids))

    def session(self) -> GameSession:
        return self.game.registry.sessions[WHERE.channel_id].state

    async def turn(self, ann: str, bob: str, dm: str) -> None:
        """One group turn: both players act, the DM answers ``dm``."""
        before = len(self.narrator.turns)
        self.model.push(reply(dm))
        await self.act(ANN, ann)
        await self.act(BOB, bob)
        await advance(self.game, self.clock, 6.0)
        assert len(self.narrator.turns) == before + 1


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
            yield Env(game, model, narrator, clock, store, settings)
        finally:
            await game.close(grace_s=0)


async def table(env: Env) -> None:
    await env.game.start_campaign(WHERE, GM, title="The Sunken Crypt", setting="A drowned temple", tone="grim")
    await env.game.join(WHERE, ANN, CharacterSheetInput("Aria", "Rogue", "Elf"))
    await env.game.join(WHERE, BOB, CharacterSheetInput("Borin", "Fighter", "Dwarf"))


async def add_secret(env: Env) -> LoreEntry:
    return await env.game.lore_add(WHERE, GM, kind="npc", name="Lord Vex", aliases=["the Red Lord"],
                                   description="Secretly a vampire who owns the harbour.", secret=True)


def names(entries: Any) -> list[str]:
    return [e.name for e in entries]


# --- pure helpers ---------------------------------------------------------------------------------
def test_aliases_split_and_names_match_case_insensitively() -> None:
    assert split_aliases("Vex, the Red Lord; Old Vex\n ,") == ["Vex", "the Red Lord", "Old Vex"]
    assert split_aliases(" - ") == [] and split_aliases("") == []
    marta = LoreEntry(1, 1, "npc", "Marta", aliases=("the Innkeeper",))
    innkeeper = LoreEntry(2, 1, "place", "The Innkeeper", aliases=())
    assert find_entry([marta, innkeeper], "  THE  innkeeper ") is innkeeper  # a name wins over an alias
    assert find_entry([marta], "the innkeeper") is marta and find_entry([marta], "Mart") is None


# --- permissions ----------------------------------------------------------------------------------
async def test_party_members_add_and_change_their_own_entries_only(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        with pytest.raises(NotInParty):
            await env.game.lore_add(WHERE, NEWBIE, kind="npc", name="Someone")
        marta = await env.game.lore_add(WHERE, ANN, kind="npc", name="  Marta  the Innkeeper ",
                                        aliases=["Marta", "marta", "Marta the innkeeper"],
                                        description="Runs the Drowned Dog; owes Aria a favour.")
        assert (marta.name, marta.aliases, marta.created_by, marta.created_by_kind, marta.created_turn) == (
            "Marta the Innkeeper", ("Marta",), ANN.user_id, "player", 0)
        assert marta.token_count == 8 and env.session().lore == [marta]
        assert (await env.game.lore_show(WHERE, BOB, "MARTA")).id == marta.id  # by alias, any case

        with pytest.raises(NotAllowed) as refused:
            await env.game.lore_edit(WHERE, BOB, "Marta", LoreEdit(description="A spy."))
        assert refused.value.player_message == (
            "Only the campaign's creator or a server admin can edit lore entries someone else made. You can "
            "change the entries you added and the facts about your own character.")
        with pytest.raises(NotAllowed):
            await env.game.lore_forget(WHERE, BOB, "Marta")
        with pytest.raises(NotAllowed) as pin:
            await env.game.lore_pin(WHERE, ANN, "Marta")
        assert pin.value.player_message == ("Only the campaign's creator or a server admin can pin or unpin lore "
                                            "entries.")
        with pytest.raises(NotAllowed):
            await env.game.lore_edit(WHERE, ANN, "Marta", LoreEdit(secret=True))
        with pytest.raises(NotAllowed):
            await env.game.lore_add(WHERE, ANN, kind="fact", name="Hidden", secret=True)

        edited = await env.game.lore_edit(WHERE, ANN, "marta", LoreEdit(name="Marta Vell", aliases=["Marta"]))
        assert (edited.name, edited.aliases, edited.edited_by_people) == ("Marta Vell", ("Marta",), True)
        with pytest.raises(UserInputError) as taken:
            await env.game.lore_add(WHERE, BOB, kind="place", name="marta")  # another entry's alias
        assert taken.value.player_message == ("The lorebook already has an entry called (or also known as) "
                                              "“marta”. Pick another name, or change that entry with `/lore edit`.")

        # a fact about one's own character may be changed by its player, whoever recorded it
        debt = await env.game.lore_add(WHERE, GM, kind="fact", name="Borin's debt", description="50 gp to Marta.")
        assert debt.created_by_kind == "admin"
        paid = await env.game.lore_edit(WHERE, BOB, "borin's debt", LoreEdit(description="Paid in full."))
        assert paid.description == "Paid in full." and paid.token_count == 3
        with pytest.raises(NotAllowed):
            await env.game.lore_forget(WHERE, ANN, "Borin's debt")
        await env.game.lore_forget(WHERE, ANN, "Marta Vell")
        assert names(env.session().lore) == ["Borin's debt"]
        assert names(await env.game.lore_list(WHERE, BOB)) == ["Borin's debt"]

        pinned = await env.game.lore_pin(WHERE, GM, "Borin's debt")
        assert pinned.pinned and env.session().lore == [pinned]
        quest = await env.game.lore_add(WHERE, BOB, kind="quest", name="Ring the bell")
        assert quest.status == "open"
        with pytest.raises(UserInputError) as status:
            await env.game.lore_edit(WHERE, BOB, "Borin's debt", LoreEdit(status="done"))
        assert status.value.player_message == "Only quests have a status."
        done = await env.game.lore_edit(WHERE, BOB, "Ring the bell", LoreEdit(status="done"))
        assert done.status == "done"
        assert names(await env.game.lore_list(WHERE, ANN, kind="quest", status="open")) == []
        with pytest.raises(UserInputError) as long:
            await env.game.lore_add(WHERE, ANN, kind="item", name="Tome", description="a " * 151)
        assert "at most 150 tokens" in long.value.player_message and "it has 151" in long.value.player_message


async def test_players_never_see_a_secret_through_lore_search_recap_or_export(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        vex = await add_secret(env)
        await env.game.lore_add(WHERE, ADMIN, kind="quest", name="Feed the Red Lord", secret=True)
        await env.game.lore_add(WHERE, ANN, kind="quest", name="Find the silver bell",
                                description="The harbour master lost it.")
        assert vex.created_by_kind == "admin" and vex.secret
        for attempt in (env.game.lore_show(WHERE, ANN, "Lord Vex"), env.game.lore_history(WHERE, ANN, "Lord Vex"),
                        env.game.lore_edit(WHERE, ANN, "Lord Vex", LoreEdit(description="x")),
                        env.game.lore_forget(WHERE, BOB, "Lord Vex")):
            with pytest.raises(UserInputError) as hidden:
                await attempt
            assert hidden.value.player_message == NOT_FOUND_VEX  # the same sentence as for nothing at all
        with pytest.raises(UserInputError) as none:
            await env.game.lore_show(WHERE, ANN, "the red lord")
        assert none.value.player_message == "The lorebook has no entry called “the red lord”. `/lore list` shows " \
                                            "what it holds."
        assert names(await env.game.lore_list(WHERE, ANN)) == ["Find the silver bell"]
        assert await env.game.lore_names(WHERE, ANN, "") == ["Find the silver bell"]
        assert await env.game.lore_names(WHERE, GM, "red") == ["Feed the Red Lord", "Lord Vex"]
        assert await env.game.lore_names(WHERE, GM, "the r") == ["Lord Vex", "Feed the Red Lord"]  # alias start
        assert (await env.game.lore_show(WHERE, GM, "the red lord")).id == vex.id
        with pytest.raises(UserInputError):  # shown to the whole table: hidden from the creator too
            await env.game.lore_show(WHERE, GM, "Lord Vex", for_table=True)
        assert names(await env.game.lore_list(WHERE, ADMIN, for_table=True)) == ["Find the silver bell"]

        assert [h.label for h in await env.game.search(WHERE, ANN, "vampire harbour")] == []
        assert [h.label for h in await env.game.search(WHERE, GM, "vampire harbour")] == ["Lord Vex (npc)"]
        assert [h.label for h in await env.game.search(WHERE, GM, "vampire", for_table=True)] == []
        assert [h.label for h in await env.game.search(WHERE, BOB, "harbour")] == ["Find the silver bell (quest)"]

        recap = await env.game.recap(WHERE)
        assert "### Open quests\n\n- **Find the silver bell** (open): The harbour master lost it." in recap
        assert "Vex" not in recap and "Red Lord" not in recap and "vampire" not in recap

        exported = await env.game.export_markdown(WHERE, ANN)
        assert "## Lorebook\n\n### Quests\n\n- **Find the silver bell** (open): The harbour master lost it.\n" \
            in exported
        assert "Vex" not in exported and "Red Lord" not in exported and "vampire" not in exported
        with pytest.raises(NotAllowed) as refused:
            await env.game.export_markdown(WHERE, ANN, include_secrets=True)
        assert refused.value.player_message == "Only the campaign's creator or a server admin can export the " \
                                               "DM's secrets."
        with pytest.raises(NotAllowed):
            await env.game.export_markdown(WHERE, include_secrets=True)
        secret = await env.game.export_markdown(WHERE, ADMIN, include_secrets=True)
        assert ("### People\n\n- **Lord Vex** (aka the Red Lord; DM secret): Secretly a vampire who owns the "
                "harbour.\n") in secret
        assert "- **Feed the Red Lord** (open; DM secret)\n" in secret


async def test_a_wrong_edit_is_reverted_and_the_history_says_who_did_what(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        await env.turn("I greet the innkeeper", "I order ale", "Marta pours two ales.")
        marta = await env.game.lore_add(WHERE, ANN, kind="npc", name="Marta", description="Kind innkeeper.")
        wrong = await env.game.lore_edit(WHERE, ANN, "Marta", LoreEdit(description="A dragon in disguise.",
                                                                       kind="faction"))
        assert (wrong.kind, wrong.description) == ("faction", "A dragon in disguise.")
        entry, revisions = await env.game.lore_history(WHERE, BOB, "marta")
        assert entry == wrong
        assert [(r.action, r.author_kind, r.author_id, r.author_name, r.turn) for r in revisions] == [
            ("create", "player", ANN.user_id, "ann", 1), ("update", "player", ANN.user_id, "ann", 1)]
        with pytest.raises(NotAllowed) as refused:
            await env.game.lore_revert(WHERE, ANN, "Marta", revisions[0].id)
        assert refused.value.player_message == "Only the campaign's creator or a server admin can revert lore entries."
        with pytest.raises(UserInputError) as missing:
            await env.game.lore_revert(WHERE, GM, "Marta", 999)
        assert missing.value.player_message == ("“Marta” has no change #999 to go back to. "
                                                "`/lore history name:Marta` lists them.")

        back = await env.game.lore_revert(WHERE, GM, "Marta", revisions[0].id)
        assert (back.id, back.kind, back.description) == (marta.id, "npc", "Kind innkeeper.")
        assert env.session().lore == [back]
        _, after = await env.game.lore_history(WHERE, GM, "Marta")
        assert [(r.action, r.author_kind, r.author_name) for r in after] == [
            ("create", "player", "ann"), ("update", "player", "ann"), ("revert", "admin", "gm")]
        assert all(r.created_at > 0 for r in after)


async def test_a_forgotten_entry_comes_back_with_revert(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        marta = await env.game.lore_add(WHERE, ANN, kind="npc", name="Marta", description="Kind innkeeper.")
        await env.game.lore_forget(WHERE, GM, "Marta")
        assert env.session().lore == []
        entry, revisions = await env.game.lore_history(WHERE, GM, "marta")  # the manager still finds it
        assert entry.id == marta.id and [r.action for r in revisions] == ["create", "forget"]
        back = await env.game.lore_revert(WHERE, GM, "Marta", revisions[0].id)
        assert (back.id, back.description) == (marta.id, "Kind innkeeper.")
        assert [e.name for e in env.session().lore] == ["Marta"]


async def test_players_see_no_revision_from_the_time_an_entry_was_secret(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        await add_secret(env)
        await env.game.lore_edit(WHERE, GM, "Lord Vex", LoreEdit(secret=False, description="A pale noble."))
        _, seen = await env.game.lore_history(WHERE, ANN, "Lord Vex")
        assert [(r.action, (r.snapshot or {}).get("description")) for r in seen] == [("update", "A pale noble.")]
        _, everything = await env.game.lore_history(WHERE, GM, "Lord Vex")
        assert [r.action for r in everything] == ["create", "update"]


# --- search -----------------------------------------------------------------------------------------
async def test_search_finds_story_chapters_and_lore_with_turns_and_snippets(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        await env.turn("I ask about the silver bell", "I watch the door", "Marta says the bell sank with the temple.")
        await env.turn("We head to the marsh", "I follow Aria", "Fog rolls over the reeds.")
        await env.store.summaries.fold(1, content="Chapter one.", token_count=2, through_message_id=0,
                                       chapter=ChapterDraft(1, 2, 0, DAY, DAY, "The party learnt of a sunken bell.",
                                                            7))
        await env.game.lore_add(WHERE, ANN, kind="item", name="Silver bell", description="It rang under water.")
        hits = await env.game.search(WHERE, BOB, "BELL")
        assert sorted((h.source, h.turn, h.label) for h in hits) == [
            ("chapter", 1, "Chapter 1"), ("lore", 2, "Silver bell (item)"),
            ("story", 1, "Aria"), ("story", 1, "DM")]
        assert sorted(h.snippet for h in hits) == [
            "I ask about the silver **bell**", "It rang under water.", "Marta says the **bell** sank with the temple.",
            "The party learnt of a sunken **bell**."]
        assert [h.label for h in await env.game.search(WHERE, BOB, "fog ree")] == ["DM"]  # word prefixes
        assert await env.game.search(WHERE, BOB, 'dragon OR "bell"') == []  # no FTS5 syntax: all words must match
        with pytest.raises(UserInputError) as empty:
            await env.game.search(WHERE, BOB, "  ?! ")
        assert empty.value.player_message == "Give a word or a name to search for."
        with pytest.raises(UserInputError) as long:
            await env.game.search(WHERE, BOB, "bell " * 50)
        assert long.value.player_message == "A search can be at most 200 characters long."


# --- recap and export -----------------------------------------------------------------------------
async def test_recap_shows_the_latest_chapter_by_default_and_any_by_number(tmp_path: Path) -> None:
    async with make_env(tmp_path) as env:
        await table(env)
        with pytest.raises(UserInputError) as none:
            await env.game.recap(WHERE, 1)
        assert none.value.player_message.startswith("The chronicle has no chapters yet")
        await env.turn("I open the gate", "I hold the torch", "The gate creaks open.")
        for number, (first, last) in enumerate(((1, 1), (2, 3)), start=1):
            await env.store.summaries.fold(1, content=f"Summary {number}.", token_count=2, through_message_id=0,
                                           chapter=ChapterDraft(first, last, 0, DAY, DAY + 86_400 * (number - 1),
                                                                f"Chapter text {number}.", 3))
        latest = await env.game.recap(WHERE)
        assert latest.startswith("## The Sunken Crypt — the story so far\n\n"
                                 "### Chapter 2 · turns 2–3 · 2023-11-14 – 2023-11-15\n\nChapter text 2.\n\n"
                                 "*Chapter 2 of 2: ask for a recap with a chapter number (1–2) to read another.*"
                                 "\n\n### Latest turns\n\n")
        assert "**DM:** The gate creaks open." in latest and "Chapter text 1." not in latest
        first = await env.game.recap(WHERE, 1)
        assert first == ("## The Sunken Crypt — the story so far\n\n### Chapter 1 · turns 1–1 · 2023-11-14\n\n"
                         "Chapter text 1.\n\n*Chapter 1 of 2: ask for a recap with a chapter number (1–2) to read "
                         "another.*")
        with pytest.raises(UserInputError) as past:
            await env.game.recap(WHERE, 3)
        assert past.value.player_message == "The chronicle has chapters 1 to 2; there is no chapter 3."

        exported = await env.game.export_markdown(WHERE, BOB)
        assert ("## Chronicle\n\n### Chapter 1 · turns 1–1 · 2023-11-14\n\nChapter text 1.\n\n"
                "### Chapter 2 · turns 2–3 · 2023-11-14 – 2023-11-15\n\nChapter text 2.\n\n## Story") in exported
        await settle(env.game, env.clock)
