"""A campaign for the journal's tests and benchmark, written straight through the store: a party
(one character with an HTML name), lore with a secret, a chapter, a running encounter and ``turns``
turns of story with dice, and model usage on several days."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.game.combat import Combatant, Encounter
from bot.models import RollRecord
from bot.store import ChapterDraft, Store

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_LINE = 'I shout <img src=x onerror="alert(2)"> and <b>bold</b> & run'
SECRET_TEXT = "The innkeeper is the lich in disguise."
PLAYER_IDS = (6_000_000_000_000_101, 6_000_000_000_000_102)


@dataclass(frozen=True, slots=True)
class Seeded:
    """What ``seed_campaign`` wrote: the campaign id, its guild and how many turns."""

    campaign_id: int
    guild_id: int
    turns: int


async def seed_campaign(store: Store, *, turns: int, guild_id: int = 4_000_000_000_000_777, channel_id: int = 90,
                        usage_days: tuple[str, ...] = ()) -> Seeded:
    """Write the campaign described in the module docstring; ``usage_days`` (``YYYY-MM-DD``) get one
    model call each (1,000 tokens times the day's position, $0.01 each)."""
    c = await store.campaigns.create(guild_id=guild_id, channel_id=channel_id, title="The Sunken Crypt",
                                     setting="A drowned temple under the harbour", tone="grim", created_by=1)
    await store.characters.create(campaign_id=c.id, player_id=PLAYER_IDS[0], player_name="ann", name="Aria",
                                  char_class="Rogue", ancestry="Elf", hp=9, max_hp=10, ac=14)
    await store.characters.create(campaign_id=c.id, player_id=PLAYER_IDS[1], player_name="bob", name=HOSTILE_NAME,
                                  char_class="Fighter", ancestry="Dwarf", hp=12, max_hp=12, ac=16)
    await store.lore.create(campaign_id=c.id, kind="npc", name="Marta", description="The innkeeper; nervous.",
                            author_kind="dm", author_id=None, author_name="DM", turn=0)
    await store.lore.create(campaign_id=c.id, kind="quest", name="Find the idol", description="Below the temple.",
                            status="open", author_kind="dm", author_id=None, author_name="DM", turn=0)
    await store.lore.create(campaign_id=c.id, kind="fact", name="Marta's secret", description=SECRET_TEXT,
                            secret=True, author_kind="dm", author_id=None, author_name="DM", turn=0)
    now = time.time()
    for turn in range(1, turns + 1):
        content = HOSTILE_LINE if turn == turns else f"Turn {turn}: I search the next hall."
        action, _ = await store.story.add_action(campaign_id=c.id, turn=turn, author_id=PLAYER_IDS[0],
                                                 author_name="ann", character_name="Aria", content=content,
                                                 token_count=8)
        rolls = [RollRecord(None, c.id, turn, None, "DM", "Aria", "1d20+5", "Perception", 17,
                            "1d20 (12) + 5 = `17`", now, True)] if turn % 10 == 0 or turn == turns else []
        await store.story.complete_turn(campaign_id=c.id, turn=turn, action_ids=[action.id],
                                        dm_content=f"The DM answers turn {turn}.", dm_token_count=6, rolls=rolls)
    await store.summaries.fold(c.id, content="x", token_count=1, through_message_id=1, chapter=ChapterDraft(
        1, 1, 1, now, now, "The party came to the drowned temple and met Marta.", 12))
    fight = Encounter(combatants=(Combatant(id="c1", name="Ghoul", kind="monster", initiative=14, hp=22, max_hp=22,
                                            ac=12),), round=2)
    await store.encounters.save(c.id, fight.to_dict(), turn=turns, before=None)
    for i, day in enumerate(usage_days, start=1):
        await store.usage.record(guild_id=guild_id, campaign_id=c.id, player_ids=[PLAYER_IDS[0]], purpose="turn",
                                 model="gpt-4o-mini", prompt_tokens=900 * i, completion_tokens=100 * i,
                                 cached_prompt_tokens=0, cost_usd=0.01,
                                 at=time.mktime(time.strptime(day + " 12", "%Y-%m-%d %H")))
    return Seeded(c.id, guild_id, turns)
