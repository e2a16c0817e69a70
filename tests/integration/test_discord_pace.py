"""Table pace on Discord (issue 16): ``/campaign pace``, ``/campaign reminders``, ``/away``, the pace in
``/campaign status`` and the round's reminder, through discord.py's real machinery against the
loopback Discord stand-in (as ``test_discord_cogs``: a real ``DungeonMasterBot`` in this process, the
scripted model server).

The game core runs on a ``ManualClock``: a round's deadline and its reminder come when a test moves
the clock, never by sleeping real time. The sync point is the clock itself: a worker waiting for a
round parks on the clock until the reminder's time (``ManualClock.next_deadline``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.game.api import DMReply
from bot.game.turns import ManualClock
from tests.integration.test_discord_cogs import Table, table
from tests.support.fake_openai import Reply

REMINDER = ("⏳ The DM is waiting for Borin and Cyra to act (a line of speech alone is not an action). The round"
            " closes in 60 min or as soon as everyone has posted (`/away` if you're out for a while).")
HOUR = 3600.0
NOT_THE_CREATOR = "Only the campaign's creator or a server admin can change the table's pace."
NOT_IN_PARTY = "You don't have a character in this campaign. Use /join first."
ROUNDS_2H = ("`rounds` — set for this campaign\n"
             "A round closes when every active character has acted, or 2 h after its first post;"
             " a reminder at 50% of it.")


@dataclass
class PacedTable(Table):
    clock: ManualClock

    async def answers(self, name: str, user: dict, *, subcommand: str | None = None,
                      options: dict | None = None) -> list[dict[str, Any]]:
        """Send a slash command and return its answers as Discord shows them (``seen_answers``),
        once one of them has content (a deferred command's "thinking" message replaced, or a refusal
        after it was deleted)."""
        iid, _ = await self.fake.send_interaction(name, user=user, subcommand=subcommand, options=options or {})
        await self.fake.wait_for(lambda: any(a["content"] for a in self.fake.seen_answers(iid)), timeout=10,
                                 what=f"the answer to /{name} {subcommand or ''}")
        return self.fake.seen_answers(iid)

    async def pace_field(self, user: dict) -> str:
        """The Pace field of ``/campaign status`` as ``user`` sees it."""
        shown = await self.command("campaign", user, subcommand="status")
        fields = {f["name"]: f["value"] for f in shown[-1]["embeds"][0]["fields"]}
        return str(fields["Pace"])

    async def parked_until(self, clock_seconds: float) -> None:
        """Until the channel's worker waits on the clock for ``clock_seconds`` (the round's reminder or
        deadline): the core has taken every action in and has nothing to do before then."""
        await self.fake.wait_for(lambda: self.clock.next_deadline() == clock_seconds, timeout=10,
                                 what=f"the worker waiting on the clock until {clock_seconds} s "
                                      f"(it waits until {self.clock.next_deadline()})")


@contextlib.asynccontextmanager
async def paced_table(tmp_path: Path) -> AsyncIterator[PacedTable]:
    """The cogs' table with the default turn window, on a clock the test moves."""
    clock = ManualClock(wall_origin=float(int(time.time())))
    async with table(tmp_path, clock=clock, turn_window_seconds=6.0, turn_extend_seconds=2.0,
                     turn_max_window_seconds=20.0) as t:
        yield PacedTable(t.fake, t.model, t.bot, clock)


async def rounds_table(t: PacedTable) -> None:
    """ann starts the campaign (its creator, no admin rights) and the three players join; ann sets
    rounds with a 2-hour deadline (the reminder at half of it, the default)."""
    ann = t.fake.players[0]
    await t.command("campaign", ann, subcommand="start", options={"title": "Slow Keep"})
    for player, name in zip(t.fake.players, ["Aria", "Borin", "Cyra"]):
        await t.command("join", player, options={"name": name, "class": "Rogue", "ancestry": "Elf"})
    set_ = await t.answers("campaign", ann, subcommand="pace", options={"mode": "rounds", "deadline_hours": 2.0})
    assert set_ == [{"content": f"⏱️ Table pace: {ROUNDS_2H}", "ephemeral": False, "deleted": False}]


async def test_campaign_pace_is_the_creators_public_change_and_a_private_refusal_for_others(tmp_path: Path) -> None:
    async with paced_table(tmp_path) as t:
        ann, bob, cy = t.fake.players
        synced = {c["name"]: c for c in next(c for c in reversed(t.fake.rest_log)
                                             if c.method == "PUT" and c.path.endswith("/commands")).json}
        pace = next(o for o in synced["campaign"]["options"] if o["name"] == "pace")
        options = {o["name"]: o for o in pace["options"]}
        assert [c["value"] for c in options["mode"]["choices"]] == ["auto", "live", "rounds", "default"]
        assert (options["deadline_hours"]["type"], options["deadline_hours"]["min_value"],
                options["deadline_hours"]["max_value"]) == (10, 1 / 60, 168.0)
        assert (options["reminder_share"]["min_value"], options["reminder_share"]["max_value"]) == (0.0, 0.95)
        assert not any(o.get("required") for o in pace["options"])

        await t.command("campaign", ann, subcommand="start", options={"title": "Slow Keep"})
        for player, name in zip(t.fake.players, ["Aria", "Borin", "Cyra"]):
            await t.command("join", player, options={"name": name, "class": "Rogue", "ancestry": "Elf"})
        auto = "`auto`, now `live` — live until the table's pace shows (a few posts from different players)"
        assert await t.pace_field(cy) == auto

        # bob neither created the campaign nor is an admin: the public "thinking" message is taken away
        # and the refusal only he sees; nothing changed
        refused = await t.answers("campaign", bob, subcommand="pace", options={"mode": "rounds"})
        assert refused == [{"content": None, "ephemeral": False, "deleted": True},
                           {"content": NOT_THE_CREATOR, "ephemeral": True, "deleted": False}]
        assert await t.pace_field(cy) == auto

        changed = await t.answers("campaign", ann, subcommand="pace",
                                  options={"mode": "rounds", "deadline_hours": 2.0})
        assert changed == [{"content": f"⏱️ Table pace: {ROUNDS_2H}", "ephemeral": False, "deleted": False}]
        assert await t.pace_field(cy) == ROUNDS_2H

        # an admin who is not the creator may; only the reminder changes, the rest stays
        later = await t.answers("campaign", t.fake.admin, subcommand="pace", options={"reminder_share": 0.0})
        assert later == [{"content": "⏱️ Table pace: `rounds` — set for this campaign\nA round closes when every"
                                     " active character has acted, or 2 h after its first post; no reminder.",
                          "ephemeral": False, "deleted": False}]
        back = await t.answers("campaign", ann, subcommand="pace", options={"mode": "default"})
        assert back == [{"content": f"⏱️ Table pace: {auto}", "ephemeral": False, "deleted": False}]
        assert t.model.chat_requests == []


async def test_away_is_a_private_toggle_and_the_status_shows_the_round_whom_it_waits_for_and_who_is_away(
        tmp_path: Path) -> None:
    async with paced_table(tmp_path) as t:
        ann, bob, cy = t.fake.players
        await rounds_table(t)
        gone = await t.answers("away", bob)
        assert gone == [{"content": "💤 The DM won't wait for **Borin** in rounds until you post again or use"
                                    " `/away` again.", "ephemeral": True, "deleted": False}]
        assert await t.pace_field(cy) == f"{ROUNDS_2H}\nAway: Borin"

        await t.fake.send_message(t.fake.channel_id, ann, "I pick the lock")
        await t.parked_until(1 * HOUR)  # the reminder, halfway to the 2-hour deadline
        deadline = int(t.clock.wall_origin + 2 * HOUR)  # the round opened at clock time 0
        assert await t.pace_field(cy) == (f"{ROUNDS_2H}\nThis round closes <t:{deadline}:R> at the latest.\n"
                                          "Waiting for: Cyra\nAway: Borin")

        welcome = await t.answers("away", bob)
        assert welcome == [{"content": "👋 Welcome back! The DM waits for **Borin** in rounds again.",
                            "ephemeral": True, "deleted": False}]
        assert await t.pace_field(cy) == (f"{ROUNDS_2H}\nThis round closes <t:{deadline}:R> at the latest.\n"
                                          "Waiting for: Borin, Cyra")
        nobody = await t.answers("away", t.fake.admin)  # no character in this campaign
        assert nobody == [{"content": NOT_IN_PARTY, "ephemeral": True, "deleted": False}]
        assert t.model.chat_requests == [] and t.fake.messages_in(t.fake.channel_id) == []


async def test_the_round_reminder_names_the_waiting_characters_and_pings_nobody(tmp_path: Path) -> None:
    async with paced_table(tmp_path) as t:
        ann, bob, cy = t.fake.players
        channel = t.fake.channel_id
        await rounds_table(t)
        await t.fake.send_message(channel, ann, "I pick the lock")
        await t.parked_until(1 * HOUR)
        assert t.fake.messages_in(channel) == []
        t.clock.advance(1 * HOUR)
        sent = await t.fake.wait_for_messages(channel, 1, timeout=10)
        assert len(sent) == 1
        reminder = sent[0]
        assert reminder["content"] == REMINDER
        assert reminder["allowed_mentions"] == {"parse": []}  # no user, role or @everyone can be pinged
        assert "<@" not in reminder["content"] and "message_reference" not in reminder
        assert t.model.chat_requests == []

        # the round goes on to its deadline (the reminder comes once), then the DM answers whoever acted
        await t.parked_until(2 * HOUR)
        t.model.push(Reply("The lock clicks; the corridor stays silent."))
        t.clock.advance(1 * HOUR)
        await t.model.wait_for_chat_requests(1, timeout=10)
        await t.fake.wait_for(lambda: any("lock clicks" in (m.get("content") or "") for m in t.fake.shown_in(channel)),
                              timeout=10, what="the DM's answer to the round")
        assert "<<<I pick the lock>>>" in t.model.chat_requests[0].messages[-1]["content"]
        posted = t.fake.messages_in(channel)
        assert [m.get("content") for m in posted].count(reminder["content"]) == 1  # reminded once
        assert all(m["allowed_mentions"] == {"parse": []} for m in posted)


async def test_a_player_who_asked_for_pings_is_the_only_one_the_reminder_may_mention(tmp_path: Path) -> None:
    async with paced_table(tmp_path) as t:
        ann, bob, cy = t.fake.players
        channel = t.fake.channel_id
        await rounds_table(t)
        on = await t.answers("campaign", bob, subcommand="reminders", options={"ping": True})
        assert on == [{"content": "🔔 Round reminders will ping you when the DM is waiting for your character.",
                       "ephemeral": True, "deleted": False}]
        off = await t.answers("campaign", cy, subcommand="reminders", options={"ping": False})
        assert off == [{"content": "🔕 Round reminders will name your character without pinging you.",
                        "ephemeral": True, "deleted": False}]
        nobody = await t.answers("campaign", t.fake.admin, subcommand="reminders", options={"ping": True})
        assert nobody == [{"content": NOT_IN_PARTY, "ephemeral": True, "deleted": False}]

        await t.fake.send_message(channel, ann, "I pick the lock")
        await t.parked_until(1 * HOUR)
        t.clock.advance(1 * HOUR)
        reminder = (await t.fake.wait_for_messages(channel, 1, timeout=10))[0]
        assert reminder["content"] == REMINDER + f"\n<@{bob['id']}>"
        # exactly bob may be pinged; Cyra is only named, and no role or @everyone can be
        assert reminder["allowed_mentions"] == {"parse": [], "users": [int(bob["id"])]}
        assert len(t.fake.messages_in(channel)) == 1


async def test_pings_go_with_each_message_once_and_never_with_edits_or_reposts(tmp_path: Path) -> None:
    """The narrator on its own: a ``DMReply`` with ``ping_user_ids`` lets those users be mentioned in the
    first post of each of its messages; an edit, or the message posted anew after someone deleted it,
    mentions nobody."""
    async with paced_table(tmp_path) as t:
        channel, bob = t.fake.channel_id, t.fake.players[1]
        ping = {"parse": [], "users": [int(bob["id"])]}
        long = ("The bell tolls over the drowned temple. " * 60).strip()  # two messages (about 2,400 chars)
        await t.bot.narrator.deliver(DMReply(channel_id=channel, text=f"{long}\n<@{bob['id']}>", kind="notice",
                                             ping_user_ids=(int(bob["id"]),)))
        split = t.fake.messages_in(channel)
        assert len(split) == 2 and split[1]["content"].endswith(f"<@{bob['id']}>")
        assert [m["allowed_mentions"] for m in split] == [ping, ping]
        await t.bot.narrator.deliver(DMReply(channel_id=channel, text=f"Plain <@{bob['id']}>", kind="notice"))
        assert t.fake.messages_in(channel)[-1]["allowed_mentions"] == {"parse": []}

        stream = t.bot.narrator.stream(DMReply(channel_id=channel, text="", kind="notice",
                                               ping_user_ids=(int(bob["id"]),)))
        await stream.show(f"<@{bob['id']}>, the tide")
        await t.fake.wait_for(lambda: len(t.fake.messages_in(channel)) == 4, timeout=10, what="the first post")
        first = t.fake.messages_in(channel)[-1]
        assert first["allowed_mentions"] == ping
        await stream.finish(DMReply(channel_id=channel, text=f"<@{bob['id']}>, the tide is rising.", kind="notice"))
        assert [e["allowed_mentions"] for e in t.fake.edits_of(first["id"])] == [{"parse": []}]

        stream = t.bot.narrator.stream(DMReply(channel_id=channel, text="", kind="notice",
                                               ping_user_ids=(int(bob["id"]),)))
        await stream.show(f"<@{bob['id']}>, the bell")
        await t.fake.wait_for(lambda: len(t.fake.messages_in(channel)) == 5, timeout=10, what="the first post")
        t.fake.delete_message(t.fake.messages_in(channel)[-1]["id"])  # a moderator deletes it
        await stream.finish(DMReply(channel_id=channel, text=f"<@{bob['id']}>, the bell rings.", kind="notice"))
        reposted = t.fake.messages_in(channel)
        assert len(reposted) == 6 and reposted[-1]["content"] == f"<@{bob['id']}>, the bell rings."
        assert reposted[-1]["allowed_mentions"] == {"parse": []}
