"""End to end: the real bot process, started the way the README starts it (scripts/run.sh), against a
loopback stand-in for Discord (REST + gateway on 127.0.0.1) and a scripted model endpoint.

One process lifetime covers a whole evening: a campaign started by slash command, three players
joining and playing a dozen turns by channel messages, dice, a recap, an admin changing a setting and
a player refused, a long reply split, then kill -9 mid-turn and a restart that answers what was
pending. Then the FIREBALL session's messages are posted scene by scene. Assertions are on what the
bot sent over REST, what the model endpoint was asked, and the database.

Every wait is for an event (a REST call, a model request, a gateway heartbeat) with a timeout that
fails naming what did not happen; nothing is synchronised by sleeping.
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

from tests.support.fake_discord import FakeDiscord
from tests.support.fake_openai import FakeOpenAI, Hang, Reply, ToolCallSpec, narrator_default

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FIREBALL = ROOT / "tests" / "data" / "fireball" / "raw.jsonl"

# The FIREBALL messages from people (not the Avrae bot), not starting with "!", that are still not for
# the DM, written out by hand with why: out-of-character asides in parentheses and wordless replies
# to Avrae's prompts. Every other such message is in character.
NOT_FOR_THE_DM = {
    1045820100835541063: "(gah, dis)",  # aside in parentheses
    1045820179994652785: "(actually, lets do this to save energy)",  # aside in parentheses
    1045821834538520749: "1",  # answers an Avrae prompt, no words
    1045824892899180634: "1",
    1045827842996441138: "4",
    1045828320853500015: "(thunder, if it matters?)",  # aside in parentheses
    1045830621013999658: "2",
    1045830872340897802: "y",  # confirms Avrae's "end combat?"
}
def long_paragraph(n: int) -> str:
    """A paragraph of over 1,000 characters (two do not fit in one message) whose sentences all
    differ, so the output guard does not take it for runaway repetition."""
    return " ".join(f"Hall {n}, door {i}: the corridor bends on past arch {i * 7 + n}." for i in range(1, 22))


def bot_env(fake: FakeDiscord, model_url: str, data_dir: Path, environ: dict[str, str],
            token: str) -> dict[str, str]:
    """The bot's environment: ``environ`` (no bot settings of the host) plus the stand-ins' URLs and
    short turn windows (0.6 s, +0.2 s per action, 2 s cap)."""
    return {**environ,
            "DISCORD_TOKEN": token, "DISCORD_API_BASE": fake.api_base, "DISCORD_GATEWAY_URL": fake.gateway_url,
            "DISCORD_DEV_GUILD_ID": str(fake.guild_id), "DISCORD_OWNER_IDS": str(fake.owner["id"]),
            "OPENAI_API_KEY": "sk-test-e2e", "OPENAI_BASE_URL": model_url, "DATA_DIR": str(data_dir),
            "TURN_WINDOW_SECONDS": "0.6", "TURN_EXTEND_SECONDS": "0.2", "TURN_MAX_WINDOW_SECONDS": "2",
            "PLAYER_COOLDOWN_SECONDS": "0", "LLM_TIMEOUT_SECONDS": "20", "LLM_MAX_ATTEMPTS": "2",
            "LOG_LEVEL": "INFO", "MAX_INPUT_CHARS": "4000"}


async def start_bot(fake: FakeDiscord, env: dict[str, str], data_dir: Path) -> asyncio.subprocess.Process:
    """Start ``scripts/run.sh run`` in its own process group; return once it has processed GUILD_CREATE."""
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "scripts" / "run.sh"), "--env-file", str(data_dir / "absent.env"), "run",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    await fake.wait_for_ready(timeout=60)
    return proc


async def interact(fake: FakeDiscord, name: str, user: dict, *, subcommand: str | None = None,
                   options: dict | None = None, channel_id: int | None = None, timeout: float = 15) -> list[dict]:
    """Send a slash command and wait until the bot answered it (callback, and the follow-up if it
    deferred); return the JSON bodies of its answers in order."""
    interaction_id, _token = await fake.send_interaction(name, user=user, subcommand=subcommand,
                                                         options=options or {}, channel_id=channel_id)

    def answered() -> bool:
        responses = fake.interaction_responses(interaction_id)
        if not responses:
            return False
        first = responses[0].json or {}
        if first.get("type") == 5:  # deferred: wait for the follow-up
            return len(responses) >= 2
        return True

    await fake.wait_for(answered, timeout=timeout, what=f"an answer to /{name} {subcommand or ''}".strip())
    return [r.json or {} for r in fake.interaction_responses(interaction_id)]


def text_of(responses: list[dict]) -> str:
    """The content and embeds (as JSON) of interaction answers, one a line."""
    parts = []
    for body in responses:
        data = body.get("data", body)
        parts.append(data.get("content") or "")
        for embed in data.get("embeds") or []:
            parts.append(json.dumps(embed))
    return "\n".join(parts)


def turn_requests(model: FakeOpenAI, since: int = 0) -> list[dict[str, Any]]:
    """Bodies of the chat requests that played a turn (they offer the DM its tools; memory folding
    does not), from request number ``since`` on."""
    return [r.body for r in model.chat_requests[since:] if r.body and r.body.get("tools")]


async def test_discord_evening_end_to_end(tmp_path: Path, subprocess_environ: dict[str, str],
                                          bot_token: str) -> None:
    model = FakeOpenAI(default=narrator_default)
    async with model, FakeDiscord() as fake:
        env = bot_env(fake, model.url, tmp_path, subprocess_environ, bot_token)
        proc = await start_bot(fake, env, tmp_path)
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
                model.push(Reply(f"Turn {turn}: the party presses on."))
                before = len(fake.messages_in(channel))
                for player in players:
                    await fake.send_message(channel, player, f"{player['username']} acts in turn {turn}")
                sent = await fake.wait_for_messages(channel, before + 1)
                assert sent[-1]["content"] == f"Turn {turn}: the party presses on."
            replies = fake.messages_in(channel)
            assert [r["content"] for r in replies] == [f"Turn {t}: the party presses on." for t in range(12)]
            model_turns = turn_requests(model)
            assert len(model_turns) == 12  # ONE model call and ONE reply per group turn
            for turn, body in enumerate(model_turns):  # each turn answered all three players at once
                assert all(f"{p['username']} acts in turn {turn}" in body["messages"][-1]["content"]
                           for p in players)

            # the DM rolls dice through a tool; the roll and its breakdown are shown
            model.push(Reply(None, tool_calls=[ToolCallSpec("roll_dice", {"expression": "1d20+5",
                                                                          "reason": "Perception",
                                                                          "character": "Aria"})]),
                       Reply("Aria spots the hidden door."))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[0], "I search the walls")
            sent = await fake.wait_for_messages(channel, before + 1)
            assert sent[-1]["content"] == "Aria spots the hidden door."
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

            # a long reply is split under 2,000 characters per message: five paragraphs of over 1,000
            # characters, no two of which fit together, are five messages
            paragraphs = [long_paragraph(n) for n in range(1, 6)]
            assert [len(p) for p in paragraphs] == [1109, 1110, 1111, 1111, 1111]
            model.push(Reply("\n\n".join(paragraphs)))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[0], "I walk down the corridor")
            await fake.wait_for(lambda: [m["content"] for m in fake.shown_in(channel)[before:]] == paragraphs,
                                timeout=20, what="five messages, one per paragraph")
            assert len(fake.messages_in(channel)) == before + 5

            # the reply streams: posted at its first words, edited as the model writes, never a 429
            scene = " ".join(f"Wave {i} breaks against the crypt's drowned steps." for i in range(1, 9))
            model.push(Reply(scene, first_token_s=0.3, tokens_per_s=40))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[1], "I watch the water")
            await fake.wait_for(lambda: [m["content"] for m in fake.shown_in(channel)[before:]] == [scene],
                                timeout=30, what="the streamed scene, whole")
            (first,) = fake.messages_in(channel)[before:]
            assert scene.startswith(first["content"]) and len(first["content"]) < len(scene) // 2
            assert len(fake.edits_of(first["id"])) >= 2 and fake.rate_limited == []

            # kill -9 mid-turn: the actions are already stored
            model.push(Hang(60))
            hung_before = len(model.chat_requests)
            for player in players:
                await fake.send_message(channel, player, f"{player['username']} braces for the flood")
            # the turn had started: the model holds its request, unanswered, with all three actions
            # (the turn closed early because the whole party had acted)
            requests = await model.wait_for_chat_requests(hung_before + 1, timeout=20)
            assert model.in_flight == 1
            asked = requests[hung_before].messages[-1]["content"]
            assert all(f"{p['username']} braces for the flood" in asked for p in players)
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
        proc = await start_bot(fake, env, tmp_path)
        try:
            sent = await fake.wait_for_messages(channel, before + 1, timeout=30)
            assert sent[-1]["content"] == "The water rises, but the party holds."
            assert db.execute("SELECT COUNT(*) FROM story_messages WHERE state = 'pending'").fetchone() == (0,)
            players_stored = db.execute(
                "SELECT COUNT(*) FROM story_messages WHERE role = 'player' AND state = 'answered'").fetchone()[0]
            assert players_stored == 12 * 3 + 1 + 1 + 1 + 3

            # the campaign goes on after the restart
            model.push(Reply("The gods are silent."))
            before = len(fake.messages_in(channel))
            await fake.send_message(channel, players[1], "I thank the gods")
            sent = await fake.wait_for_messages(channel, before + 1)
            assert sent[-1]["content"] == "The gods are silent."

            # FIREBALL replay in a second channel: batched, ignores ! commands and the other bot
            await replay_fireball(fake, model, db)

            # SIGTERM (docker stop) while the model is answering: the turn finishes, then a clean exit
            model.push(Reply("The doors close behind you.", delay=1.5))
            before, asked_before = len(fake.messages_in(channel)), len(model.chat_requests)
            held = model.in_flight  # the killed process's request is still held by its Hang
            await fake.send_message(channel, players[2], "I step through the doors")
            await model.wait_for_chat_requests(asked_before + 1, timeout=15)
            assert model.in_flight == held + 1  # the reply is still being written when the signal comes
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
            assert [m["content"] for m in fake.messages_in(channel)[before:]] == ["The doors close behind you."]
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


def fireball_scenes() -> list[list[dict[str, Any]]]:
    """The recorded messages in order, cut into scenes: a scene ends with Avrae's announcement of
    whose turn it is next (``**Initiative ...``), the table's own turn boundary."""
    events = [json.loads(line) for line in FIREBALL.read_text(encoding="utf-8").splitlines() if line.strip()]
    messages = sorted((e for e in events if e["event_type"] == "message"), key=lambda e: e["created_at"])
    scenes: list[list[dict[str, Any]]] = [[]]
    for m in messages:
        scenes[-1].append(m)
        if m["author_bot"] and m["content"].startswith("**Initiative"):
            scenes.append([])
    return [scene for scene in scenes if scene]


def in_character(m: dict[str, Any]) -> bool:
    """For the DM: from a person, not a ``!`` command for Avrae, not one of ``NOT_FOR_THE_DM``."""
    return not m["author_bot"] and not m["content"].strip().startswith("!") and m["message_id"] not in NOT_FOR_THE_DM


async def replay_fireball(fake: FakeDiscord, model: FakeOpenAI, db: sqlite3.Connection) -> None:
    """Post the FIREBALL session in the second channel one scene at a time, each scene's messages back
    to back (well inside one 0.5 s window, +0.2 s per action), waiting for the DM's reply to a scene
    with something in character before posting the next."""
    channel = fake.channel_ids[1]
    await interact(fake, "campaign", fake.owner, subcommand="start", options={"title": "FIREBALL"},
                   channel_id=channel)
    scenes = fireball_scenes()
    messages = [m for scene in scenes for m in scene]
    acts = [[m for m in scene if in_character(m)] for scene in scenes]
    assert len(messages) == 182 and sum(m["author_bot"] for m in messages) == 70
    assert sum(not m["author_bot"] and m["content"].strip().startswith("!") for m in messages) == 59
    assert [len(a) for a in acts] == [3, 2, 4, 1, 5, 2, 3, 3, 2, 3, 1, 0, 1, 4, 2, 3, 6]  # 45 in character

    authors: dict[str, dict] = {}
    ids: dict[int, int] = {}
    asked: list[dict[str, Any]] = []
    for scene, scene_acts in zip(scenes, acts):
        before, since = len(fake.messages_in(channel)), len(model.chat_requests)
        for m in scene:
            author = authors.setdefault(m["author_id"], {"id": 900_000 + len(authors), "username": m["author_name"],
                                                         "bot": m["author_bot"]})
            ids[m["message_id"]] = await fake.send_message(channel, author, m["content"],
                                                           author_is_bot=m["author_bot"])
        if scene_acts:
            sent = await fake.wait_for_messages(channel, before + 1)
            assert len(sent) == before + 1
            (body,) = turn_requests(model, since)  # one turn for the whole scene
            asked.append(body)
    # The scene without anything in character (11) got no turn: the next scene's turn, played after
    # it was read, answered only that scene's actions, and its messages were never stored.

    replies = fake.messages_in(channel)
    answered = [a for a in acts if a]
    assert len(replies) == len(answered) == 16  # one reply per scene with actions: batched
    for body, scene_acts in zip(asked, answered):
        last = body["messages"][-1]["content"]
        assert last.count("<<<") == len(scene_acts)  # exactly the scene's actions, nobody has a sheet
        assert all(m["content"].strip()[:40] in last for m in scene_acts)
    for reply, scene_acts in zip(replies, answered):  # each replies to an action of its own scene
        assert int(reply["message_reference"]["message_id"]) in {ids[m["message_id"]] for m in scene_acts}
    stored = {row[0] for row in db.execute(
        "SELECT platform_message_id FROM story_messages s JOIN campaigns c ON c.id = s.campaign_id"
        " WHERE c.title = 'FIREBALL' AND s.role = 'player'")}
    assert stored == {ids[m["message_id"]] for a in acts for m in a}  # every in-character message, only those
    pending = db.execute("SELECT COUNT(*) FROM story_messages WHERE state = 'pending'").fetchone()
    assert pending == (0,)
