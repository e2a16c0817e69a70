"""The cogs against discord.py's real machinery, in this process: a real ``DungeonMasterBot`` logs in to
the loopback Discord stand-in, receives gateway payloads (MESSAGE_CREATE, INTERACTION_CREATE) that
discord.py parses into messages and interactions, and answers over REST, which the stand-in records.
The model is the scripted OpenAI-compatible server. Faster than the end-to-end process test, so the
cases that need many set-ups live here: intents, ephemeral answers, autocomplete, expired tokens,
owner and admin checks, error sentences, typing, the queue limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from bot.app import DungeonMasterBot, apply_discord_endpoints
from bot.config import load_settings
from bot.errors import BotError, UserInputError
from bot.game.turns import Clock
from bot.llm import LLMClient
from bot.store import Database, Store
from cogs._common import NOT_IN_A_SERVER, guild_id_of
from cogs.admin import OWNER_ONLY_SYNC
from tests.support.fake_discord import MESSAGE_CONTENT_INTENT, FakeDiscord
from tests.support.fake_openai import Error, FakeOpenAI, Hang, Reply, narrator_default

TOKEN = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
EPHEMERAL = 64


@dataclass
class Table:
    fake: FakeDiscord
    model: FakeOpenAI
    bot: DungeonMasterBot

    async def command(self, name: str, user: dict, *, subcommand: str | None = None,
                      options: dict | None = None, timeout: float = 10, **extra: Any) -> list[dict]:
        """Send a slash command; wait for its callback and, if deferred, its follow-up (or a channel
        message, for expired interactions). Returns the JSON bodies of its responses."""
        iid, _ = await self.fake.send_interaction(name, user=user, subcommand=subcommand,
                                                  options=options or {}, **extra)

        def done() -> bool:
            responses = self.fake.interaction_responses(iid)
            if not responses:
                return False
            return (responses[0].json or {}).get("type") != 5 or len(responses) >= 2

        await self.fake.wait_for(done, timeout=timeout)
        return [r.json or {} for r in self.fake.interaction_responses(iid)]

    async def channel_messages(self, count: int, timeout: float = 10) -> list[dict]:
        channel = self.fake.channel_id
        await self.fake.wait_for(lambda: len(self.fake.messages_in(channel)) >= count, timeout=timeout)
        return self.fake.messages_in(channel)


def text_of(responses: list[dict]) -> str:
    parts = []
    for body in responses:
        data = body.get("data", body)
        parts.append(data.get("content") or "")
        parts.extend(json.dumps(e) for e in data.get("embeds") or [])
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def table(tmp_path: Path, *, clock: Clock | None = None, **overrides: Any) -> AsyncIterator[Table]:
    """A real bot logged in to the Discord stand-in, its model the scripted server; the core on
    ``clock`` (real time unless given); ``overrides``: settings."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    model = FakeOpenAI(default=narrator_default)
    async with model, FakeDiscord() as fake:
        settings = load_settings(None, **{
            "discord_token": TOKEN, "discord_api_base": fake.api_base, "discord_gateway_url": fake.gateway_url,
            "discord_dev_guild_id": fake.guild_id, "discord_owner_ids": [int(fake.owner["id"])],
            "openai_api_key": "sk-test-cogs", "openai_base_url": model.url, "data_dir": tmp_path,
            "turn_window_seconds": 0.3, "turn_extend_seconds": 0.1, "turn_max_window_seconds": 1.0,
            "player_cooldown_seconds": 0, "llm_max_attempts": 1, "llm_timeout_seconds": 10, **overrides})
        apply_discord_endpoints(settings)
        async with Database.open(settings.database_path, migrate=True) as db, LLMClient.from_settings(settings) as llm:
            bot = DungeonMasterBot(settings=settings, store=Store(db), llm=llm, clock=clock)
            runner = asyncio.create_task(bot.start(TOKEN))
            try:
                await fake.wait_for_ready(timeout=20)
                await fake.wait_for(lambda: bot.is_ready() or runner.done(), timeout=20)
                assert not runner.done(), runner.exception()
                yield Table(fake, model, bot)
            finally:
                await bot.close()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(runner, 5)
                discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def start_with_party(t: Table) -> None:
    await t.command("campaign", t.fake.owner, subcommand="start", options={"title": "Test Keep"})
    for player, name in zip(t.fake.players, ["Aria", "Borin", "Cyra"]):
        await t.command("join", player, options={"name": name, "class": "Rogue", "ancestry": "Elf"})


async def test_without_content_intent_typed_chatter_is_ignored_but_mentions_and_act_play(tmp_path: Path) -> None:
    async with table(tmp_path, discord_message_content_intent=False) as t:
        assert not int(t.fake.identify_payloads[-1]["intents"]) & MESSAGE_CONTENT_INTENT
        await start_with_party(t)
        channel, me = t.fake.channel_id, t.bot.user
        assert me is not None
        before, count = len(t.model.chat_requests), len(t.fake.messages_in(channel))
        await t.fake.send_message(channel, t.fake.players[0], "I kick the chest")  # arrives with empty content
        # The mention arrives next, inside the same turn window: had the first message been taken as an
        # action, it would be stored and answered in this same turn. Only the mention is.
        await t.fake.send_message(channel, t.fake.players[0], f"<@{me.id}> I open the door",
                                  mentions=[t.fake.bot_user])
        sent = await t.channel_messages(count + 1)
        assert len(t.model.chat_requests) == before + 1
        prompt = t.model.chat_requests[-1].messages[-1]["content"]
        assert "I open the door" in prompt and f"<@{me.id}>" not in prompt and "kick" not in prompt
        rows = await t.bot.store.db.fetchall("SELECT content FROM story_messages WHERE role = 'player'")
        assert [r[0] for r in rows] == ["I open the door"]
        assert sent[-1]["allowed_mentions"] == {"parse": []}

        acted = await t.command("act", t.fake.players[1], options={"action": "I light a torch"})
        assert acted[0]["type"] == 5 and "**bob**: I light a torch" in text_of(acted)
        await t.channel_messages(count + 2)
        assert "I light a torch" in t.model.chat_requests[-1].messages[-1]["content"]


async def test_private_roll_is_ephemeral_and_shows_the_breakdown(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        public = await t.command("roll", t.fake.players[0], options={"expression": "1d20+5", "reason": "Stealth"})
        assert not (public[0].get("data") or {}).get("flags", 0) & EPHEMERAL
        assert "Stealth" in text_of(public) and "1d20" in text_of(public) and "= `" in text_of(public)
        private = await t.command("roll", t.fake.players[0], options={"expression": "4d6kh3", "private": True})
        assert private[0]["type"] == 5 and private[0]["data"]["flags"] & EPHEMERAL
        assert private[1]["flags"] & EPHEMERAL and "4d6kh3" in text_of(private)
        bad = await t.command("roll", t.fake.players[0], options={"expression": "1d20+"})
        assert "can't roll" in text_of(bad) and "Traceback" not in text_of(bad)
        assert bad[-1]["flags"] & EPHEMERAL  # an error is shown to its author only


async def test_character_names_autocomplete_and_sheets_are_embeds(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        iid, _ = await t.fake.send_interaction("character", user=t.fake.players[0], subcommand="show",
                                               options={"name": "B"}, type=4, focused="name")
        await t.fake.wait_for(lambda: bool(t.fake.interaction_responses(iid)))
        callback = t.fake.interaction_responses(iid)[0].json
        assert callback["type"] == 8
        assert [c["name"] for c in callback["data"]["choices"]] == ["Borin"]

        shown = await t.command("character", t.fake.players[2], subcommand="show", options={"name": "Aria"})
        embed = shown[-1]["embeds"][0]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert embed["title"] == "Aria" and fields["Class"] == "Rogue" and fields["Ancestry"] == "Elf"
        assert embed["footer"]["text"] == "Played by ann"


async def test_an_answer_after_the_interaction_token_expired_goes_to_the_channel(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        before = len(t.fake.messages_in(t.fake.channel_id))
        iid, token = await t.fake.send_interaction("campaign", user=t.fake.players[0], subcommand="status",
                                                   age_seconds=16 * 60)
        sent = await t.channel_messages(before + 1)
        assert "Test Keep" in json.dumps(sent[-1])
        assert not any(f"/webhooks/{t.fake.application_id}/{token}" in c.path for c in t.fake.rest_log)


def command_puts(t: Table) -> list[Any]:
    """The command syncs the bot made (``PUT .../commands``), oldest first."""
    return [c for c in t.fake.rest_log if c.method == "PUT" and c.path.endswith("/commands")]


async def test_admin_commands_are_hidden_and_checked(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        synced = {c["name"]: c for c in command_puts(t)[-1].json}
        assert int(synced["config"]["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
        assert int(synced["usage"]["default_member_permissions"]) == discord.Permissions(manage_guild=True).value

        shown = await t.command("config", t.fake.admin, subcommand="show")
        assert "turn_window_seconds" in text_of(shown)
        bad = await t.command("config", t.fake.admin, subcommand="set", options={"key": "turn_mode", "value": "chaos"})
        assert "turn_mode" in text_of(bad) and "Traceback" not in text_of(bad)
        usage = await t.command("usage", t.fake.players[0])
        assert "Manage Server" in text_of(usage)


async def test_only_the_owner_can_sync_and_a_refusal_is_one_ephemeral_sentence(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        admin_group = t.bot.tree.get_command("admin")
        assert isinstance(admin_group, discord.app_commands.Group)
        sync = admin_group.get_command("sync")
        assert isinstance(sync, discord.app_commands.Command)
        assert len(sync.checks) == 1  # the owner check is an app_commands.check, not an if in the body
        syncs = len(command_puts(t))
        refused = await t.command("admin", t.fake.admin, subcommand="sync", options={"scope": "here"})
        # the check refused before the command body ran: no "thinking…" deferral, one answer, no sync
        assert len(refused) == 1 and refused[0]["type"] == 4
        assert refused[0]["data"]["content"] == OWNER_ONLY_SYNC
        assert refused[0]["data"]["flags"] & EPHEMERAL
        assert len(command_puts(t)) == syncs

        done = await t.command("admin", t.fake.owner, subcommand="sync", options={"scope": "here"})
        assert done[0]["type"] == 5 and done[1]["flags"] & EPHEMERAL
        puts = command_puts(t)
        assert len(puts) == syncs + 1
        assert puts[-1].path == f"/applications/{t.fake.application_id}/guilds/{t.fake.guild_id}/commands"
        assert done[1]["content"] == f"Synced {len(puts[-1].json)} commands (here)."


async def test_after_a_global_sync_the_campaign_group_is_unavailable_in_dms(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        done = await t.command("admin", t.fake.owner, subcommand="sync", options={"scope": "global"})
        assert done[1]["content"].endswith("commands (global).")
        put = command_puts(t)[-1]
        assert put.path == f"/applications/{t.fake.application_id}/commands"
        synced = {c["name"]: c for c in put.json}
        guild_only = {"dm_permission": False, "contexts": [0]}  # 0: guild; 1: bot DM; 2: private channel
        for name in ("campaign", "character", "lore", "join", "act", "retry", "undo", "config", "usage"):
            assert {k: synced[name][k] for k in guild_only} == guild_only, name
        # the subcommands carry no flags of their own: Discord reads them from the group only
        assert "dm_permission" not in synced["campaign"]["options"][0]
        assert synced["roll"]["dm_permission"] is True  # dice work anywhere: the check can tell them apart


async def test_an_admin_hint_is_shown_to_admins_only_and_always_logged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def locked(where: Any) -> Any:
        raise BotError(player_message="The campaign book is locked.",
                       admin_hint="The database file is read-only: check DATA_DIR's permissions.")

    async with table(tmp_path) as t:
        monkeypatch.setattr(t.bot.game, "status", locked)
        with caplog.at_level(logging.INFO, logger="bot.app"):
            admin = await t.command("campaign", t.fake.admin, subcommand="status")
            player = await t.command("campaign", t.fake.players[0], subcommand="status")
        # /campaign status defers publicly, and Discord shows the first follow-up with the defer's
        # visibility: the hint comes in a second follow-up, the only one that is private for sure.
        assert [m["content"] for m in admin[1:]] == [
            "The campaign book is locked.",
            "-# For admins: The database file is read-only: check DATA_DIR's permissions."]
        assert [m["content"] for m in player[1:]] == ["The campaign book is locked."]
        assert admin[2]["flags"] & EPHEMERAL
        hints = [r.getMessage() for r in caplog.records if "admin hint" in r.getMessage()]
        assert hints == ["command campaign status: admin hint: The database file is read-only: "
                         "check DATA_DIR's permissions."] * 2


def test_a_server_only_command_outside_a_server_gets_a_sentence_not_an_assert() -> None:
    with pytest.raises(UserInputError) as refused:
        guild_id_of(cast(discord.Interaction, SimpleNamespace(guild_id=None)))  # only guild_id is read
    assert refused.value.player_message == NOT_IN_A_SERVER
    assert guild_id_of(cast(discord.Interaction, SimpleNamespace(guild_id=42))) == 42


async def test_model_failures_become_a_sentence_and_the_actions_are_kept(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        channel = t.fake.channel_id
        t.model.push(Error(429, code="insufficient_quota", message="You exceeded your current quota"))
        before = len(t.fake.messages_in(channel))
        await t.fake.send_message(channel, t.fake.players[0], "I pick the lock")
        sent = await t.channel_messages(before + 1)
        assert "out of ink" in sent[-1]["content"] and "Traceback" not in sent[-1]["content"]
        rows = await t.bot.store.db.fetchall(
            "SELECT state FROM story_messages WHERE content = 'I pick the lock'")
        assert [r[0] for r in rows] == ["pending"]

        # the typing indicator was shown while the DM worked; the next turn answers the kept action
        assert any(c.method == "POST" and c.path == f"/channels/{channel}/typing" for c in t.fake.rest_log)
        t.model.push(Reply("The lock clicks open."))
        await t.fake.send_message(channel, t.fake.players[1], "I hold the lantern")
        sent = await t.channel_messages(before + 2)
        assert "lock clicks open" in sent[-1]["content"]
        last_prompt = t.model.chat_requests[-1].messages[-1]["content"]
        assert "I pick the lock" in last_prompt and "I hold the lantern" in last_prompt


async def test_a_flooded_channel_gets_a_clear_answer_when_its_queue_is_full(tmp_path: Path) -> None:
    limit = 3
    async with table(tmp_path, channel_queue_limit=limit) as t:
        await start_with_party(t)
        channel = t.fake.channel_id
        t.model.push(Hang(30))
        await t.fake.send_message(channel, t.fake.players[0], "I start the ritual")
        await t.fake.wait_for(lambda: len(t.model.chat_requests) >= 1, timeout=10)  # the DM is busy
        before = len(t.fake.messages_in(channel))
        for i in range(limit + 2):
            await t.fake.send_message(channel, t.fake.players[i % 3], f"flood {i}")
        sent = await t.channel_messages(before + 1)
        refusals = [m for m in sent[before:] if "too many actions waiting" in (m.get("content") or "")]
        assert refusals and all(m.get("message_reference") for m in refusals)
        stored = await t.bot.store.db.fetchall("SELECT content FROM story_messages WHERE content LIKE 'flood %'")
        assert len(stored) == limit - 1  # the action being answered holds one slot of the queue


async def test_the_synced_sheet_options_carry_the_cores_limits(tmp_path: Path) -> None:
    """Discord refuses out-of-range numbers before the core sees them, at exactly the core's limits
    (the old edit command allowed -999 hit points, which the core then refused)."""
    async with table(tmp_path) as t:
        await t.command("admin", t.fake.owner, subcommand="sync", options={"scope": "global"})
        synced = {c["name"]: c for c in command_puts(t)[-1].json}
        edit = next(o for o in synced["character"]["options"] if o["name"] == "edit")
        bounds = {o["name"]: (o.get("min_value", o.get("min_length")), o.get("max_value", o.get("max_length")))
                  for o in edit["options"]}
        assert bounds == {"name": (1, 40), "class": (1, 40), "ancestry": (1, 40), "backstory": (0, 1000),
                          "hp": (0, 999), "max_hp": (1, 999), "ac": (1, 40), "level": (1, 20), "notes": (0, 1000)}
        join = {o["name"]: (o.get("min_value", o.get("min_length")), o.get("max_value", o.get("max_length")))
                for o in synced["join"]["options"]}
        assert join == {"name": (1, 40), "class": (1, 40), "ancestry": (1, 40), "backstory": (0, 1000),
                        "max_hp": (1, 999), "ac": (1, 40)}


async def autocomplete(t: Table, user: dict, name: str, subcommand: str, current: str) -> list[str]:
    """The choices the bot offers ``user`` while they type ``current`` into ``/<name> <subcommand> name:``."""
    iid, _ = await t.fake.send_interaction(name, user=user, subcommand=subcommand, options={"name": current},
                                           type=4, focused="name")
    await t.fake.wait_for(lambda: bool(t.fake.interaction_responses(iid)), timeout=10)
    callback = t.fake.interaction_responses(iid)[0].json
    assert callback["type"] == 8
    return [c["name"] for c in callback["data"]["choices"]]


async def test_lore_add_show_and_autocomplete_keep_secrets_from_players(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        ann, bob = t.fake.players[0], t.fake.players[1]
        added = await t.command("lore", ann, subcommand="add", options={
            "kind": "npc", "name": "Marta", "aliases": "the innkeeper, Old Marta",
            "description": "Runs the Drowned Dog."})
        # the table sees a new entry that is not a secret
        assert added[0]["type"] == 5 and not (added[0].get("data") or {}).get("flags", 0) & EPHEMERAL
        assert added[1]["content"] == "📖 **Marta** is in the lorebook."
        assert added[1]["embeds"][0]["title"] == "Marta"
        secret = await t.command("lore", t.fake.owner, subcommand="add", options={
            "kind": "npc", "name": "Lord Vex", "description": "A vampire.", "secret": True})
        assert secret[0]["data"]["flags"] & EPHEMERAL and secret[1]["flags"] & EPHEMERAL
        assert secret[1]["content"] == "📖 **Lord Vex** is in the lorebook as a DM secret."
        rows = await t.bot.store.db.fetchall("SELECT name, secret, created_by_kind FROM lore_entries ORDER BY id")
        assert [tuple(r) for r in rows] == [("Marta", 0, "player"), ("Lord Vex", 1, "admin")]

        assert await autocomplete(t, bob, "lore", "show", "") == ["Marta"]
        assert await autocomplete(t, bob, "lore", "show", "old") == ["Marta"]  # an alias
        assert await autocomplete(t, bob, "lore", "edit", "lord") == []
        assert await autocomplete(t, t.fake.owner, "lore", "show", "") == ["Lord Vex", "Marta"]

        shown = await t.command("lore", bob, subcommand="show", options={"name": "the INNKEEPER"})
        assert shown[0]["data"]["flags"] & EPHEMERAL and shown[1]["flags"] & EPHEMERAL  # private by default
        embed = shown[1]["embeds"][0]
        assert (embed["title"], embed["description"]) == ("Marta", "Runs the Drowned Dog.")
        assert {f["name"]: f["value"] for f in embed["fields"]} == {"Kind": "npc",
                                                                     "Also known as": "the innkeeper, Old Marta"}
        assert embed["footer"]["text"] == "Added by a player in turn 0"
        hidden = await t.command("lore", bob, subcommand="show", options={"name": "Lord Vex"})
        assert hidden[-1]["content"] == "The lorebook has no entry called “Lord Vex”. `/lore list` shows what it holds."
        refused = await t.command("lore", bob, subcommand="edit", options={"name": "Marta", "description": "A spy."})
        assert "Only the campaign's creator or a server admin can edit lore entries someone else made." \
            in refused[-1]["content"] and refused[-1]["flags"] & EPHEMERAL
        listed = await t.command("lore", t.fake.owner, subcommand="list", options={"private": False})
        assert not listed[1].get("flags", 0) & EPHEMERAL
        assert "Marta" in listed[1]["content"] and "Vex" not in listed[1]["content"]  # shared: no secrets


async def test_campaign_search_is_private_by_default_and_hides_secrets(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        ann = t.fake.players[0]
        await t.command("lore", ann, subcommand="add", options={
            "kind": "item", "name": "Silver bell", "description": "It rings under water."})
        await t.command("lore", t.fake.owner, subcommand="add", options={
            "kind": "fact", "name": "The bell's curse", "description": "Whoever rings it drowns.", "secret": True})
        found = await t.command("campaign", ann, subcommand="search", options={"query": "bell"})
        assert found[0]["type"] == 5 and found[0]["data"]["flags"] & EPHEMERAL and found[1]["flags"] & EPHEMERAL
        assert found[1]["content"] == ("**1 result for “bell”**\n"
                                       "• Lorebook · Silver bell (item): It rings under water.")
        admin = await t.command("campaign", t.fake.owner, subcommand="search", options={"query": "drowns"})
        assert admin[1]["content"] == ("**1 result for “drowns”**\n"
                                       "• Lorebook · The bell's curse (fact): Whoever rings it **drowns**.")
        shared = await t.command("campaign", t.fake.owner, subcommand="search",
                                 options={"query": "drowns", "private": False})
        assert not shared[1].get("flags", 0) & EPHEMERAL
        assert shared[1]["content"] == "Nothing in this campaign matches “drowns”."


def tracker_posts(t: Table) -> list[dict]:
    """The tracker embeds the bot posted in the channel (POST bodies), oldest first."""
    return [m for m in t.fake.messages_in(t.fake.channel_id)
            if any(str(e.get("title", "")).startswith("Combat:") for e in m.get("embeds") or [])]


async def test_combat_add_posts_the_tracker_and_next_edits_that_same_message(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        added = await t.command("combat", t.fake.owner, subcommand="add", options={"name": "Goblin", "count": 2})
        assert "Goblin 1 (" in text_of(added) and "Goblin 2 (" in text_of(added)
        await t.fake.wait_for(lambda: len(tracker_posts(t)) == 1, what="the tracker message")
        posted = tracker_posts(t)[0]
        embed = posted["embeds"][0]
        assert embed["title"] == "Combat: not started (the first turn begins round 1)"
        assert "Goblin 1 — unhurt" in embed["description"] and "Goblin 2 — unhurt" in embed["description"]

        joined = await t.command("combat", t.fake.players[0], subcommand="init", options={"roll": 30})
        assert "Aria joins the fight with initiative 30." in text_of(joined)
        refused = await t.command("combat", t.fake.players[1], subcommand="end")
        assert "Only the campaign's creator or a server admin can end the fight." in text_of(refused)
        assert refused[-1]["flags"] & EPHEMERAL

        moved = await t.command("combat", t.fake.owner, subcommand="next")
        assert "Round 1: Aria's turn." in text_of(moved)
        edits = t.fake.edits_of(posted["id"])
        assert len(edits) == 2 and len(tracker_posts(t)) == 1  # the init and the next: edited, not re-posted
        assert edits[-1]["embeds"][0]["title"] == "Combat: round 1, Aria's turn"
        assert edits[-1]["embeds"][0]["description"].startswith("```\n> 30  Aria — HP ")
        assert await t.bot.store.encounters.tracker(1) == (t.fake.channel_id, int(posted["id"]))

        # someone deletes the tracker message: the next change posts a new one and edits that from then on
        t.fake.delete_message(posted["id"])
        await t.command("combat", t.fake.owner, subcommand="next")
        await t.fake.wait_for(lambda: len(tracker_posts(t)) == 2, what="a new tracker message")
        ended = await t.command("combat", t.fake.owner, subcommand="end")
        assert "The fight is over after 1 round." in text_of(ended)
        final = t.fake.edits_of(tracker_posts(t)[1]["id"])
        assert [e["embeds"][0]["title"] for e in final] == ["Combat: the fight is over"]

        shown = await t.command("combat", t.fake.players[0], subcommand="show")
        assert "There is no fight running." in text_of(shown)


async def test_combat_autocompletes_monsters_party_members_and_combatants(tmp_path: Path) -> None:
    async with table(tmp_path) as t:
        await start_with_party(t)
        iid, _ = await t.fake.send_interaction("combat", user=t.fake.owner, subcommand="add",
                                               options={"name": "gob"}, type=4, focused="name")
        await t.fake.wait_for(lambda: bool(t.fake.interaction_responses(iid)))
        choices = [c["name"] for c in t.fake.interaction_responses(iid)[0].json["data"]["choices"]]
        assert choices == ["Goblin", "Hobgoblin"]  # starting with "gob", then containing it
        iid, _ = await t.fake.send_interaction("combat", user=t.fake.owner, subcommand="add",
                                               options={"name": "bor"}, type=4, focused="name")
        await t.fake.wait_for(lambda: bool(t.fake.interaction_responses(iid)))
        assert next(c["name"] for c in t.fake.interaction_responses(iid)[0].json["data"]["choices"]) == "Borin"
        await t.command("combat", t.fake.owner, subcommand="add", options={"name": "Borin"})
        iid, _ = await t.fake.send_interaction("combat", user=t.fake.owner, subcommand="remove",
                                               options={"name": ""}, type=4, focused="name")
        await t.fake.wait_for(lambda: bool(t.fake.interaction_responses(iid)))
        assert [c["name"] for c in t.fake.interaction_responses(iid)[0].json["data"]["choices"]] == ["Borin"]


async def test_moderation_on_discord_refusals_are_private_and_config_set_explains_a_missing_api(
        tmp_path: Path) -> None:
    from bot.game.moderation import MODERATED_INPUT_MESSAGE, MODERATION_UNAVAILABLE_MESSAGE
    from tests.support.fake_openai import flag_words

    async with table(tmp_path) as t:
        await start_with_party(t)
        t.model.moderation = None  # an endpoint without a moderation API
        refused = await t.command("config", t.fake.admin, subcommand="set",
                                  options={"key": "moderation", "value": "on"})
        assert [r["content"] for r in refused[1:]] == [MODERATION_UNAVAILABLE_MESSAGE, (
            "-# For admins: Moderation needs an endpoint with POST /v1/moderations (OpenAI's); leave the "
            "`moderation` option off with this OPENAI_BASE_URL.")]
        assert all(r["flags"] & EPHEMERAL for r in refused[1:])
        assert (await t.bot.game.get_config(t.fake.guild_id)).moderation is False

        t.model.moderation = flag_words({"flay": {"violence/graphic": 0.9}})
        turned_on = await t.command("config", t.fake.admin, subcommand="set",
                                    options={"key": "moderation", "value": "on"})
        assert "`moderation` is now `True`" in text_of(turned_on)

        channel = t.fake.channel_id
        before, chats = len(t.fake.messages_in(channel)), len(t.model.chat_requests)
        await t.fake.send_message(channel, t.fake.players[0], "I flay the prisoner alive")
        sent = await t.channel_messages(before + 1)
        told = sent[before]
        assert told["content"] == MODERATED_INPUT_MESSAGE and told.get("message_reference")  # a short reply
        assert told["allowed_mentions"] == {"parse": [], "replied_user": False}
        iid, _ = await t.fake.send_interaction("act", user=t.fake.players[1], options={"action": "I flay him too"})
        await t.fake.wait_for(lambda: any(a["content"] for a in t.fake.seen_answers(iid)), timeout=10,
                              what="the refusal of the /act")
        # the public "thinking" message is gone and the refusal only its author sees
        assert t.fake.seen_answers(iid) == [{"content": None, "ephemeral": False, "deleted": True},
                                            {"content": MODERATED_INPUT_MESSAGE, "ephemeral": True, "deleted": False}]
        rows = await t.bot.store.db.fetchall("SELECT author_name, content, reason FROM refused_messages ORDER BY id")
        assert [tuple(r) for r in rows] == [("ann", "I flay the prisoner alive", "moderated"),
                                            ("bob", "I flay him too", "moderated")]
        assert len(t.model.chat_requests) == chats  # the DM never saw either


async def test_an_edit_before_the_turn_reaches_the_prompt_a_deletion_withdraws_and_after_it_nothing_changes(
        tmp_path: Path) -> None:
    async with table(tmp_path, turn_window_seconds=3, turn_extend_seconds=0.5, turn_max_window_seconds=4) as t:
        await start_with_party(t)
        channel, (ann, bob, _cy) = t.fake.channel_id, t.fake.players
        t.model.push(Reply("The door gives way; the lantern stays dark."))
        before = len(t.model.chat_requests)
        typo = await t.fake.send_message(channel, ann, "I kcik the door")
        dropped = await t.fake.send_message(channel, bob, "I light the lantern")
        campaign = await t.bot.store.campaigns.live_in_channel(channel)
        assert campaign is not None

        async def stored() -> None:  # a player edits after their message is in, as people do
            while len(await t.bot.store.story.pending(campaign.id)) < 2:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(stored(), 10)
        await t.fake.edit_user_message(channel, typo, ann, "I kick the door")
        await t.fake.delete_user_message(channel, dropped)
        asked = (await t.model.wait_for_chat_requests(before + 1, timeout=15))[before]
        prompt = asked.messages[-1]["content"]
        assert "<<<I kick the door>>>" in prompt and "kcik" not in prompt and "lantern" not in prompt
        await t.fake.wait_for(lambda: len(t.fake.messages_in(channel)) >= 1, timeout=15, what="the reply")
        rows = await t.bot.store.db.fetchall(
            "SELECT content, first_content, state FROM story_messages WHERE campaign_id = ? AND role = 'player'"
            " ORDER BY id", (campaign.id,))
        assert [tuple(r) for r in rows] == [("I kick the door", "I kcik the door", "answered"),
                                            ("I light the lantern", None, "undone")]
        # after the DM answered: an edit changes nothing in the story (that is /undo's job)
        await t.fake.edit_user_message(channel, typo, ann, "I never touched the door")
        t.model.push(Reply("Dust settles."))
        await t.fake.send_message(channel, bob, "I wait")
        later = (await t.model.wait_for_chat_requests(before + 2, timeout=15))[before + 1]
        history = "\n".join(str(m.get("content")) for m in later.messages)
        assert "I kick the door" in history and "never touched" not in history
