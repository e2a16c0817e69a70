"""Streamed replies through discord.py's real machinery: a real ``DungeonMasterBot`` in this process
against the loopback Discord stand-in (which enforces Discord's per-channel message limits, 5 per 5
seconds, with 429 and ``retry_after`` beyond) and the scripted model server streaming at a set pace
(time to first token, tokens per second), so the edits, the splitting, the dice embed, mentions, a
stream that breaks halfway and moderation are seen as Discord would see them."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from pathlib import Path

from bot.game.errors import LOST_THREAD
from bot.llm.errors import ServiceUnavailable
from bot.models import UsageLine
from tests.integration.test_discord_cogs import Table, start_with_party, table
from tests.support.fake_openai import Reply, ToolCallSpec, flag_words

SCENE = ("The rope bridge sways as you step onto it. Far below, the river churns white around black rocks, "
         "and the spray rises cold against your faces. Halfway across, a plank cracks under Aria's boot; "
         "she catches the rope in time. On the far side, torchlight moves behind the arrow slits of the old "
         "gatehouse, and a horn sounds twice, long and low. Whoever holds the keep knows you are coming.")


def messages_after(t: Table, before: int) -> list[dict]:
    return t.fake.messages_in(t.fake.channel_id)[before:]


async def test_a_reply_is_posted_at_its_first_words_and_edited_at_most_once_a_second(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        before = len(t.fake.messages_in(t.fake.channel_id))
        t.model.push(Reply(SCENE, first_token_s=0.3, tokens_per_s=40))
        sent_at = time.monotonic()
        await t.fake.send_message(t.fake.channel_id, t.fake.players[0], "We cross the bridge")
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(t.fake.channel_id)[before:]] == [SCENE],
                              timeout=30, what="the streamed reply to end as the whole scene")
        [posted] = messages_after(t, before)
        request = t.model.chat_requests[-1]
        assert request.first_token_at is not None and request.last_token_at is not None
        stream_s = request.last_token_at - request.first_token_at
        assert SCENE.startswith(posted["content"]) and len(posted["content"]) < len(SCENE) // 4
        edits = t.fake.edits_of(posted["id"])
        assert 2 <= len(edits) <= math.ceil(stream_s) + 1, (len(edits), stream_s)
        # the pace while written: a second or more between requests, at most 3 in any 5 s (the last
        # edit, the finished reply, is not held back)
        times = [r.at for r in t.fake.bucket_log if r.at >= sent_at and r.channel_id == str(t.fake.channel_id)
                 and (r.method == "POST" or r.path.endswith(f"/messages/{posted['id']}"))]
        assert len(times) == 1 + len(edits)
        streaming = times[:-1]
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(streaming)), streaming
        assert all(sum(1 for x in streaming if a <= x < a + 5.0) <= 3 for a in streaming), streaming
        assert all(SCENE.startswith(e["content"]) for e in edits)
        assert t.fake.rate_limited == []
        for body in [posted, *edits]:
            assert body["allowed_mentions"] == {"parse": []}


async def test_a_long_streamed_reply_continues_in_new_messages_where_a_whole_one_would_be_cut(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        # four paragraphs of 1,168 to 1,354 characters: no two fit in one 1,900-character message
        paragraphs = [" ".join([f"Hall {n}, arch {i}: the corridor bends and the dripping goes on."
                                for i in range(1, 19 + n)]) for n in range(1, 5)]
        assert [len(p) for p in paragraphs] == [1168, 1230, 1292, 1354]
        text = "\n\n".join(paragraphs)
        before = len(t.fake.messages_in(t.fake.channel_id))
        t.model.push(Reply(text, first_token_s=0.1, tokens_per_s=600))
        await t.fake.send_message(t.fake.channel_id, t.fake.players[0], "I walk on")
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(t.fake.channel_id)[before:]]
                              == paragraphs, timeout=30, what="four messages, one per paragraph")
        assert len(messages_after(t, before)) == 4
        assert t.fake.rate_limited == []


async def test_the_dice_embed_goes_with_the_first_streamed_message(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        before = len(t.fake.messages_in(t.fake.channel_id))
        t.model.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5", "reason": "Athletics",
                                                                         "character": "Aria"})]),
                     Reply(SCENE, first_token_s=0.1, tokens_per_s=200))
        await t.fake.send_message(t.fake.channel_id, t.fake.players[0], "I leap the gap")
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(t.fake.channel_id)[before:]] == [SCENE],
                              timeout=30, what="the reply to end as the scene")
        [posted] = messages_after(t, before)
        assert [e["title"] for e in posted["embeds"]] == ["Dice"]
        assert "Athletics" in posted["embeds"][0]["description"]


async def test_a_stream_that_breaks_halfway_is_edited_into_the_notice_and_answered_later(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        channel = t.fake.channel_id
        before = len(t.fake.messages_in(channel))
        t.model.push(Reply(SCENE, first_token_s=0.1, tokens_per_s=80, fail_after_chars=150, fail_mode="drop"))
        await t.fake.send_message(channel, t.fake.players[0], "We cross the bridge")
        notice = f"{LOST_THREAD} {ServiceUnavailable.player_message_default}"
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(channel)[before:]] == [notice],
                              timeout=30, what="the partial reply to become the notice")
        [posted] = messages_after(t, before)
        assert SCENE.startswith(posted["content"])  # it was the partial reply first
        campaign = await t.bot.store.campaigns.live_in_channel(channel)
        assert campaign is not None
        assert [m.content for m in await t.bot.store.story.pending(campaign.id)] == ["We cross the bridge"]
        t.model.push(Reply("You make it across as the last rope snaps."))
        await t.fake.send_message(channel, t.fake.players[1], "Run!")
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(channel)[before:]]
                              == [notice, "You make it across as the last rope snaps."], timeout=30,
                              what="the next turn to answer both actions")
        answered = t.model.chat_requests[-1].messages[-1]["content"]
        assert "We cross the bridge" in answered and "Run!" in answered
        assert await t.bot.store.story.pending(campaign.id) == []


async def test_with_moderation_on_replies_come_whole(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        t.model.moderation = flag_words(["decapitate"])
        await start_with_party(t)
        await t.command("config", t.fake.owner, subcommand="set", options={"key": "moderation", "value": "on"})
        channel = t.fake.channel_id
        before = len(t.fake.messages_in(channel))
        t.model.push(Reply(SCENE, first_token_s=0.1, tokens_per_s=200))
        await t.fake.send_message(channel, t.fake.players[0], "We cross the bridge")
        await t.fake.wait_for(lambda: len(messages_after(t, before)) == 1, timeout=30, what="the reply")
        [posted] = messages_after(t, before)
        assert posted["content"] == SCENE and t.fake.edits_of(posted["id"]) == []
        assert "stream" not in (t.model.chat_requests[-1].body or {})


async def test_an_endpoint_that_does_not_stream_gives_one_whole_message(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        t.model.streaming = False  # "stream": true answered with a plain JSON completion
        await start_with_party(t)
        before = len(t.fake.messages_in(t.fake.channel_id))
        t.model.push(Reply(SCENE))
        await t.fake.send_message(t.fake.channel_id, t.fake.players[0], "We cross the bridge")
        await t.fake.wait_for(lambda: len(messages_after(t, before)) == 1, timeout=30, what="the reply")
        [posted] = messages_after(t, before)
        assert posted["content"] == SCENE and t.fake.edits_of(posted["id"]) == []


async def test_usage_a_stream_did_not_report_is_stored_as_estimated(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        channel = t.fake.channel_id
        before = len(t.fake.messages_in(channel))
        t.model.push(Reply(SCENE, stream_usage=False))
        await t.fake.send_message(channel, t.fake.players[0], "We cross the bridge")
        await t.fake.wait_for(lambda: [m["content"] for m in t.fake.shown_in(channel)[before:]] == [SCENE],
                              timeout=30, what="the reply")
        campaign = await t.bot.store.campaigns.live_in_channel(channel)
        assert campaign is not None

        async def recorded() -> list[UsageLine]:  # the ledger writes just after the reply is out
            while not (lines := (await t.bot.store.usage.report(t.fake.guild_id, campaign.id)).campaign_today):
                await asyncio.sleep(0.02)
            return list(lines)

        [line] = await asyncio.wait_for(recorded(), 10)
        assert (line.requests, line.estimated_requests) == (1, 1)
