"""The table pace's store (``bot.store.pace``) on both backends: settings, the open round (closed only
by the round it belongs to), players' choices and their last answered turns."""

from __future__ import annotations

from bot.models import PaceSettings, Round
from bot.store import Store


async def test_pace_settings_round_and_players_round_trip(store: Store) -> None:
    c = await store.campaigns.create(guild_id=9, channel_id=90, title="Slow Road", setting="", tone="",
                                     created_by=1)
    assert await store.pace.load(c.id) == (PaceSettings(), None, {})
    await store.pace.set_settings(c.id, PaceSettings("rounds", 7200.0, 0.25))
    await store.pace.open_round(c.id, Round(1_800_000_000.5, 1_800_007_200.5))
    await store.pace.reminded(c.id, 1_800_001_800.0)
    await store.pace.set_player(c.id, 101, away=True)
    await store.pace.set_player(c.id, 101, ping=True)
    await store.pace.set_player(c.id, 102, joined_turn=4)
    settings, opened, players = await store.pace.load(c.id)
    assert settings == PaceSettings("rounds", 7200.0, 0.25)
    assert opened == Round(1_800_000_000.5, 1_800_007_200.5, reminded=True)
    assert {p: (v.away, v.ping, v.joined_turn, v.last_turn) for p, v in players.items()} == {
        101: (True, True, 0, 0), 102: (False, False, 4, 0)}
    await store.pace.set_deadline(c.id, 1_800_010_000.0)
    await store.pace.close_round(c.id, 1_700_000_000.0)  # an older round's close leaves this one alone
    assert (await store.pace.load(c.id))[1] == Round(1_800_000_000.5, 1_800_010_000.0, reminded=True)
    await store.pace.close_round(c.id, 1_800_000_000.5)
    settings, opened, _ = await store.pace.load(c.id)
    assert (settings, opened) == (PaceSettings("rounds", 7200.0, 0.25), None)


async def test_last_answered_turns_come_from_the_story_and_recent_posts_in_order(store: Store) -> None:
    c = await store.campaigns.create(guild_id=9, channel_id=91, title="Slow Road", setting="", tone="",
                                     created_by=1)
    for turn, (author, at) in enumerate([(101, 100.0), (102, 200.0), (101, 300.0)], start=1):
        action, _ = await store.story.add_action(campaign_id=c.id, turn=turn, author_id=author, author_name="p",
                                                 character_name=None, content=f"act {turn}", token_count=2,
                                                 created_at=at)
        await store.story.complete_turn(campaign_id=c.id, turn=turn, action_ids=[action.id],
                                        dm_content="The DM answers.", dm_token_count=3)
    await store.story.add_action(campaign_id=c.id, turn=4, author_id=103, author_name="q", character_name=None,
                                 content="pending", token_count=1, created_at=400.0)
    _, _, players = await store.pace.load(c.id)
    assert {p: v.last_turn for p, v in players.items()} == {101: 3, 102: 2}  # 103's action is not answered
    assert await store.pace.recent_messages(c.id, 3) == [(200.0, 102), (300.0, 101), (400.0, 103)]
