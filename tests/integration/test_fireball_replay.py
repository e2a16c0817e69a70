"""Replay a real recorded Discord D&D session (FIREBALL, CC-BY-4.0, tests/data/fireball/LICENSE)
through the game core in recorded order, with time compressed, and check what was answered, batched
and ignored. Expected counts come from the data itself, independently of the code under test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.game.api import Actor, ChannelRef, IncomingMessage
from tests.support.fake_openai import FakeOpenAI
from tests.support.game_helpers import fast_settings, running_game

DATA = Path(__file__).resolve().parents[1] / "data" / "fireball" / "raw.jsonl"
SPEED = 600.0  # 65 recorded minutes in about 6.5 s


def load_messages() -> list[dict]:
    events = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted((e for e in events if e["event_type"] == "message"), key=lambda e: e["created_at"])


def is_ooc_text(text: str) -> bool:
    t = text.strip().lower()
    return t.startswith(("((", "//", "ooc:", "[ooc]", "(ooc)", "ooc -"))


async def test_fireball_session_replay(tmp_path: Path) -> None:
    messages = load_messages()
    assert len(messages) == 182
    bots = [m for m in messages if m["author_bot"]]
    commands = [m for m in messages if not m["author_bot"] and m["content"].strip().startswith("!")]
    empty = [m for m in messages if not m["author_bot"] and not m["content"].strip()]
    ooc = [m for m in messages if not m["author_bot"] and is_ooc_text(m["content"])
           and not m["content"].strip().startswith("!")]
    in_character = [m for m in messages if m not in bots and m not in commands and m not in empty
                    and m not in ooc]
    assert len(bots) == 70 and len(commands) == 59 and len(in_character) > 30

    settings = fast_settings(tmp_path, turn_window_seconds=6 / SPEED, turn_extend_seconds=2 / SPEED,
                             turn_max_window_seconds=20 / SPEED, player_cooldown_seconds=2 / SPEED,
                             max_input_chars=4000)
    async with FakeOpenAI() as server:
        async with running_game(settings, server.url) as (game, narrator, store):
            await game.start_campaign(ChannelRef(1, 55), Actor(1, "gm", True),
                                      title="FIREBALL replay")
            game.count("warm up the tokenizer", settings.dm_model)  # loading it must not stall the replay
            reasons: dict[str, int] = {}
            queued: list[int] = []
            refused: list[tuple[int, str]] = []
            start = messages[0]["created_at"]
            t0 = asyncio.get_running_loop().time()
            for m in messages:
                due = t0 + (m["created_at"] - start) / SPEED
                await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
                intake = await game.handle_message(IncomingMessage(
                    guild_id=1, channel_id=55, author_id=int(m["author_id"]) % (2 ** 62),
                    author_name=m["author_name"], content=m["content"], message_id=m["message_id"],
                    author_is_bot=m["author_bot"], created_at=m["created_at"]))
                reasons[intake.reason] = reasons.get(intake.reason, 0) + 1
                if intake.status == "queued":
                    queued.append(m["message_id"])
                else:
                    refused.append((m["message_id"], intake.reason))
            for _ in range(300):  # until every queued action has been answered in a delivered reply
                if sum(len(r.answered_message_ids) for r in narrator.turns) >= len(queued):
                    break
                await asyncio.sleep(0.05)

            assert reasons.get("bot") == len(bots)
            assert reasons.get("prefix") == len(commands)
            assert sorted(queued) == sorted(m["message_id"] for m in in_character), \
                [r for r in refused if r[1] not in ("bot", "prefix")]
            answered = [i for r in narrator.turns for i in r.answered_message_ids]
            assert sorted(answered) == sorted(queued), [n.text for n in narrator.notices]  # every in-character message answered exactly once
            assert len(narrator.turns) < len(queued)  # batched: fewer DM replies than messages
            assert len(server.chat_requests) == len(narrator.turns)
            stored = [m for m in await store.story.transcript(1) if m.role == "player"]
            assert sorted(m.platform_message_id for m in stored) == sorted(queued)  # type: ignore[type-var]
            assert all(m.state == "answered" for m in stored)
            print(f"FIREBALL replay: {len(messages)} messages, {len(queued)} in character, "
                  f"{len(narrator.turns)} DM replies, ignored {reasons}")
