"""End to end: the real bot process, started the way the README starts it (scripts/run.sh), against a
loopback stand-in for Discord (REST + gateway on 127.0.0.1) and a scripted model endpoint.

One process lifetime covers a whole evening: a campaign started by slash command, three players
joining and playing a dozen turns by channel messages, dice, a recap, an admin changing a setting and
a player refused, a long reply split, then kill -9 mid-turn and a restart that answers what was
pending. Then the FIREBALL session's messages are posted at their recorded pace (compressed).
Assertions are on what the bot sent over REST.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.game.filters import has_words, is_ooc
from tests.support.fake_openai import FakeOpenAI, Hang, Reply, ToolCallSpec, narrator_default

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
FIREBALL = ROOT / "tests" / "data" / "fireball" / "raw.jsonl"
SPEED = 300.0


def bot_env(fake: Any, model_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENAI_"))}
    env.update({
        "DISCORD_TOKEN": TOKEN, "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_DEV_GUILD_ID": str(fake.guild_id), "DISCORD_OWNER_IDS": str(fake.owner["id"]),
        "OPENAI_API_KEY": "sk-test-e2e", "OPENAI_BASE_URL": model_url, "DATA_DIR": str(data_dir),
        "TURN_WINDOW_SECONDS": "0.6", "TURN_EXTEND_SECONDS": "0.2", "TURN_MAX_WINDOW_SECONDS": "2",
        "PLAYER_COOLDOWN_SECONDS": "0", "LLM_TIMEOUT_SECONDS": "20", "LLM_MAX_ATTEMPTS": "2",
        "LOG_LEVEL": "INFO", "MAX_INPUT_CHARS": "4000",
    })
    return env


async def start_bot(fake: Any, model_url: str, data_dir: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "scripts" / "run.sh"), "--env-file", str(data_dir / "absent.env"), "run",
        cwd=ROOT, env=bot_env(fake, model_url, data_dir), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    await fake.wait_for_ready(timeout=60)
    return proc


async def interact(fake: Any, name: str, user: dict, *, subcommand: str | None = None,
                   options: dict | None = None, timeout: float = 15) -> list[dict]:
    """Send a slash command and wait until the bot answered it (callback + follow-up if deferred)."""
    interaction_id, _token = await fake.send_interaction(name, user=user, subcommand=subcommand,
                                                         options=options or {})

    def answered() -> bool:
        responses = fake.interaction_responses(interaction_id)
        if not responses:
            return False
        first = responses[0].json or {}
        if first.get("type") == 5:  # deferred: wait for the follow-up
            return len(responses) >= 2
        return True

    await fake.wait_for(lambda *_: answered(), timeout=timeout)
    return [r.json or {} for r in fake.interaction_responses(interaction_id)]


def text_of(responses: list[dict]) -> str:
    parts = []
    for body in responses:
        data = body.get("data", body)
        parts.append(data.get("content") or "")
        for embed in data.get("embeds") or []:
            parts.append(json.dumps(embed))
    return "\n".join(parts)


async def wait_channel_messages(fake: Any, channel_id: int, count: int, timeout: float = 20) -> list[dict]:
    await fake.wait_for(lambda *_: len(fake.messages_in(channel_id)) >= count, timeout=timeout)
    return fake.messages_in(channel_id)


async def test_discord_evening_end_to_end(tmp_path: Path) -> None:
    from tests.support.fake_discord import FakeDiscord

    model = FakeOpenAI(default=narrator_default)
    async with model, FakeDiscord() as fake:
        proc = await start_bot(fake, model.url, tmp_path)
        try:
            channel = fake.channel_id
            owner, admin, players = fake.owner, fake.admin, fake.players
            # commands were synced to the dev guild on start-up, never globally
            puts = [r for r in fake.rest_log if r.method == "PUT" and r.path.endswith("/commands")]
            assert puts and all(f"/guilds/{fake.guild_id}/" in r.path for r in puts)
            synced = {c["name"] for c in puts[-1].json}
            assert {"campaign", "join", "character", "act", "roll", "retry", "undo", "config", "usage"} <= synced

            started = await interact(fake, "campaign", owner, subcommand="start",
                                     options={"title": "The Sunken Crypt", "tone": "grim"})
            assert started[0]["type"] == 5 and "The Sunken Crypt" in text_of(started)
            for player, (name, cls, anc) in zip(players, [("Aria", "Rogue", "Elf"), ("Borin", "Cleric", "Dwarf"),
                                                         ("Cyra", "Wizard", "Human")]):
                joined = await interact(fake, "join", player, options={"name": name, "class": cls, "ancestry": anc})
                assert name in text_of(joined)

            # a dozen turns by channel messages, the three players acting together each turn
            for turn in range(12):
                before = len(fake.messages_in(channel))
                for player in players:
                    await fake.send_message(channel, player, f"{player['username']} acts in turn {turn}")
                sent = await wait_channel_messages(fake, channel, before + 1)
                assert "turn " + str(turn) in sent[-1]["content"] or "considers" in sent[-1]["content"]
            replies = fake.messages_in(channel)
            assert len(replies) == 12  # ONE reply per group turn
            model_turns = [r for r in model.chat_requests if r.body and r.body.get("tools")]
            assert len(model_turns) == 12
            for r in model_turns:  # each turn answered all three players at once
                assert all(f"{p['username']} acts" in r.body["messages"][-1]["content"] for p in players)

            # the DM rolls dice through a tool; the roll and its breakdown are shown
            model.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5",
                                                                          "reason": "Perception",
                                                                          "character": "Aria"})]),
                       Reply("Aria spots the hidden door."))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[0], "I search the walls")
            sent = await wait_channel_messages(fake, channel, before + 1)
            dice_embed = json.dumps(sent[-1].get("embeds"))
            assert "1d20" in dice_embed and "Perception" in dice_embed

            rolled = await interact(fake, "roll", players[1], options={"expression": "4d6kh3", "reason": "stats"})
            assert "4d6kh3" in text_of(rolled)
            bad = await interact(fake, "roll", players[1], options={"expression": "1d20+"})
            assert "can't roll" in text_of(bad) and "Traceback" not in text_of(bad)

            recap = await interact(fake, "campaign", players[2], subcommand="recap")
            assert "The Sunken Crypt" in text_of(recap) and "hidden door" in text_of(recap)

            # admin may change settings; a player is refused at run time
            ok = await interact(fake, "config", admin, subcommand="set",
                                options={"key": "turn_window_seconds", "value": "0.5"})
            assert "0.5" in text_of(ok)
            refused = await interact(fake, "config", players[0], subcommand="set",
                                     options={"key": "model", "value": "gpt-4o"})
            assert "Manage Server" in text_of(refused)

            # a long reply is split under 2,000 characters per message
            model.push(Reply(("The corridor stretches on. " * 40 + "\n\n") * 5))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[0], "I walk down the corridor")
            await asyncio.sleep(0.1)
            await fake.wait_for(lambda *_: len(fake.messages_in(channel)) >= before + 3, timeout=20)

            # kill -9 mid-turn: the actions are already stored
            model.push(Hang(60))
            hung_before = len(model.chat_requests)
            for player in players:
                await fake.send_message(channel, player, f"{player['username']} braces for the flood")
            for _ in range(400):
                if len(model.chat_requests) > hung_before:
                    break
                await asyncio.sleep(0.05)
            assert len(model.chat_requests) > hung_before
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

        db = sqlite3.connect(tmp_path / "dungeon_master.sqlite3")
        pending = db.execute("SELECT content FROM story_messages WHERE state = 'pending'").fetchall()
        assert sorted(p[0] for p in pending) == sorted(f"{p['username']} braces for the flood" for p in players)

        before = len(fake.messages_in(channel))
        model.push(Reply("The water rises, but the party holds."))
        proc = await start_bot(fake, model.url, tmp_path)
        try:
            sent = await wait_channel_messages(fake, channel, before + 1, timeout=30)
            assert "party holds" in sent[-1]["content"]
            assert db.execute("SELECT COUNT(*) FROM story_messages WHERE state = 'pending'").fetchone() == (0,)
            players_stored = db.execute(
                "SELECT COUNT(*) FROM story_messages WHERE role = 'player' AND state = 'answered'").fetchone()[0]
            assert players_stored == 12 * 3 + 1 + 1 + 3

            # the campaign goes on after the restart
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[1], "I thank the gods")
            await wait_channel_messages(fake, channel, before + 1)

            # FIREBALL replay in a second channel: batched, ignores ! commands and the other bot
            await replay_fireball(fake, model, db)

            # SIGTERM (docker stop) while the model is answering: the turn finishes, then a clean exit
            model.push(Reply("The doors close behind you.", delay=1.5))
            before, asked = len(fake.messages_in(channel)), len(model.chat_requests)
            await fake.send_message(channel, players[2], "I step through the doors")
            await fake.wait_for(lambda *_: len(model.chat_requests) > asked, timeout=15)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
            assert "doors close behind you" in fake.messages_in(channel)[-1]["content"]
            assert len(fake.messages_in(channel)) == before + 1
            assert db.execute("SELECT COUNT(*) FROM story_messages WHERE state = 'pending'").fetchone() == (0,)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            db.close()

        # everything the bot sent is safe for Discord
        for message in fake.sent_messages:
            assert len(message.get("content") or "") <= 2000
            assert message.get("allowed_mentions") == {"parse": []}


async def replay_fireball(fake: Any, model: FakeOpenAI, db: sqlite3.Connection) -> None:
    channel = fake.channel_ids[1]
    owner = fake.owner
    interaction_id, _ = await fake.send_interaction("campaign", user=owner, subcommand="start",
                                                    options={"title": "FIREBALL"}, channel_id=channel)
    await fake.wait_for(lambda *_: len(fake.interaction_responses(interaction_id)) >= 2, timeout=15)
    events = [json.loads(line) for line in FIREBALL.read_text().splitlines() if line.strip()]
    messages = sorted((e for e in events if e["event_type"] == "message"), key=lambda e: e["created_at"])
    authors: dict[str, dict] = {}
    ids: dict[int, int] = {}
    start = asyncio.get_running_loop().time()
    first = messages[0]["created_at"]
    for m in messages:
        due = start + (m["created_at"] - first) / SPEED
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        author = authors.setdefault(m["author_id"], {"id": 900_000 + len(authors), "username": m["author_name"],
                                                     "bot": m["author_bot"]})
        ids[m["message_id"]] = await fake.send_message(channel, author, m["content"],
                                                       author_is_bot=m["author_bot"])
    # the documented rules (bot/game/filters.py, unit-tested case by case): not a bot, not a `!`
    # command, not out of character, at least one word
    in_character = [m for m in messages if not m["author_bot"] and not m["content"].strip().startswith("!")
                    and has_words(m["content"]) and not is_ooc(m["content"])]
    for _ in range(600):
        pending = db.execute("SELECT COUNT(*) FROM story_messages WHERE state = 'pending'").fetchone()[0]
        if pending == 0:
            break
        await asyncio.sleep(0.1)
    stored = {row[0] for row in db.execute(
        "SELECT platform_message_id FROM story_messages s JOIN campaigns c ON c.id = s.campaign_id"
        " WHERE c.title = 'FIREBALL' AND s.role = 'player'")}
    assert stored == {ids[m["message_id"]] for m in in_character}  # every in-character message is in the DB
    replies = fake.messages_in(channel)
    assert 0 < len(replies) < len(in_character)  # batched
    referenced = {int(r["message_reference"]["message_id"]) for r in replies if r.get("message_reference")}
    ignored = {ids[m["message_id"]] for m in messages if m["author_bot"] or m["content"].strip().startswith("!")}
    assert not referenced & ignored  # no reply to a ! command or to the other bot
