"""The world-memory store: chapters written with the fold, the lorebook's revisions, undo of a
turn's lore, and full-text search over story, chapters and lore (each backend: SQLite's FTS5, PostgreSQL's tsvector)."""

from __future__ import annotations

import pytest

from bot.store import ChapterDraft, Store
from bot.store.errors import NameTaken
from tests.support.checks import present


async def campaign(store: Store) -> int:
    c = await store.campaigns.create(guild_id=1, channel_id=2, title="T", setting="", tone="", created_by=3)
    return c.id


async def test_a_fold_writes_its_chapter_in_the_same_transaction_and_numbers_them(store: Store) -> None:
    cid = await campaign(store)
    for n in (1, 2):
        draft = ChapterDraft(first_turn=n * 10 - 9, last_turn=n * 10, through_message_id=n * 40, started_at=n,
                             ended_at=n + 0.5, content=f"Chapter text {n}.", token_count=4)
        summary, chapter = await store.summaries.fold(cid, content=f"So far {n}.", token_count=3,
                                                      through_message_id=n * 40, chapter=draft)
        assert present(chapter).number == n and summary.through_message_id == n * 40
    assert [(c.number, c.first_turn, c.last_turn, c.content) for c in await store.chapters.all(cid)] == [
        (1, 1, 10, "Chapter text 1."), (2, 11, 20, "Chapter text 2.")]
    assert [c.number for c in await store.chapters.latest(cid)] == [2]
    assert present(await store.chapters.get(cid, 1)).content == "Chapter text 1."
    assert await store.chapters.get(cid, 3) is None


async def test_lore_changes_are_revisions_that_can_be_reverted(store: Store) -> None:
    cid = await campaign(store)
    marta = await store.lore.create(campaign_id=cid, kind="npc", name="Marta", aliases=["the innkeeper"],
                                    description="Runs the Drowned Rat.", token_count=5, author_kind="dm",
                                    author_id=None, author_name="DM", turn=3)
    with pytest.raises(NameTaken):
        await store.lore.create(campaign_id=cid, kind="npc", name="MARTA", author_kind="dm", author_id=None,
                                author_name="DM", turn=3)
    edited = await store.lore.update(marta.id, {"description": "Runs the Drowned Rat; owes the guild."},
                                     author_kind="player", author_id=101, author_name="ann", turn=4)
    assert edited.edited_by_people and edited.aliases == ("the innkeeper",)
    revisions = await store.lore.revisions(marta.id)
    assert [(r.action, r.author_kind, r.author_name, r.turn) for r in revisions] == [
        ("create", "dm", "DM", 3), ("update", "player", "ann", 4)]
    back = await store.lore.revert(marta.id, revisions[0].id, author_kind="admin", author_id=1, author_name="gm",
                                   turn=4)
    assert back.description == "Runs the Drowned Rat."
    gone = await store.lore.forget(marta.id, author_kind="admin", author_id=1, author_name="gm", turn=4)
    assert gone.id == marta.id and await store.lore.live(cid) == []
    await store.lore.revert(marta.id, revisions[0].id, author_kind="admin", author_id=1, author_name="gm", turn=4)
    assert [e.name for e in await store.lore.live(cid)] == ["Marta"]


async def test_undo_of_a_turn_takes_back_only_what_the_dm_recorded_then(store: Store) -> None:
    cid = await campaign(store)
    kept = await store.lore.create(campaign_id=cid, kind="place", name="Saltmarsh", description="A port.",
                                   author_kind="dm", author_id=None, author_name="DM", turn=1)
    await store.lore.create(campaign_id=cid, kind="quest", name="Find the idol", status="open",
                            author_kind="dm", author_id=None, author_name="DM", turn=2)
    await store.lore.update(kept.id, {"description": "A port, now burning."}, author_kind="dm", author_id=None,
                            author_name="DM", turn=2)
    await store.lore.create(campaign_id=cid, kind="fact", name="Aria fears water", author_kind="player",
                            author_id=101, author_name="ann", turn=2)
    assert await store.lore.undo_turn(cid, 2) == 2
    live = {e.name: e for e in await store.lore.live(cid)}
    assert sorted(live) == ["Aria fears water", "Saltmarsh"]
    assert live["Saltmarsh"].description == "A port."


async def test_search_finds_story_chapters_and_lore_but_no_secrets_or_undone_story(store: Store) -> None:
    cid = await campaign(store)
    a, _ = await store.story.add_action(campaign_id=cid, turn=1, author_id=101, author_name="ann",
                                        character_name="Aria", content="I ask Marta about the idol", token_count=6)
    await store.story.complete_turn(campaign_id=cid, turn=1, action_ids=[a.id],
                                    dm_content="Marta leans in: the idol sank with the Gull.", dm_token_count=9)
    b, _ = await store.story.add_action(campaign_id=cid, turn=2, author_id=101, author_name="ann",
                                        character_name="Aria", content="I bribe Marta", token_count=3)
    await store.story.complete_turn(campaign_id=cid, turn=2, action_ids=[b.id], dm_content="She refuses.",
                                    dm_token_count=2)
    await store.story.undo_turn(cid, 2)
    await store.summaries.fold(cid, content="x", token_count=1, through_message_id=a.id, chapter=ChapterDraft(
        1, 1, a.id, 0, 0, "The party met Marta, who knew of the idol.", 9))
    await store.lore.create(campaign_id=cid, kind="npc", name="Marta", description="Innkeeper; knows of the idol.",
                            author_kind="dm", author_id=None, author_name="DM", turn=1)
    await store.lore.create(campaign_id=cid, kind="fact", name="Marta's secret", secret=True,
                            description="Marta sank the Gull herself.", author_kind="dm", author_id=None,
                            author_name="DM", turn=1)
    hits = await store.search.search(cid, "marta")
    assert sorted((h.source, h.label) for h in hits) == [
        ("chapter", "Chapter 1"), ("lore", "Marta (npc)"), ("story", "Aria"), ("story", "DM")]
    assert all("bribe" not in h.snippet for h in hits)  # undone story is not found
    assert sorted(h.label for h in await store.search.search(cid, "marta", include_secrets=True)
                  if h.source == "lore") == ["Marta (npc)", "Marta's secret (fact)"]
    assert await store.search.search(cid, '"):*') == []  # no words: nothing, and no FTS syntax error
    assert [h.source for h in await store.search.search(cid, "sank Gull")] == ["story"]  # the secret has it too
