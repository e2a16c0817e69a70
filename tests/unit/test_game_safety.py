"""Table safety tools: lines and veils as rules of the system prompt (creator or admin only), and
the X-card, which anyone may use, anonymously, to have the DM's last reply rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import UserInputError
from bot.game.errors import NotAllowed
from bot.game.safety import XCARD_NOTE
from tests.support.doubles import ScriptedModel, reply
from tests.unit.test_game_sessions import ANN, BOB, GM, WHERE, make_env, party_of


async def test_lines_and_veils_are_rules_of_the_system_prompt(tmp_path: Path) -> None:
    async with make_env(tmp_path, ScriptedModel(), turn_mode="mention") as env:
        await party_of(env, ANN)
        with pytest.raises(NotAllowed) as refused:
            await env.game.safety_change(WHERE, ANN, "lines", "spiders")
        assert refused.value.player_message == ("Only the campaign's creator or a server admin can change the "
                                                "table's lines.")
        await env.game.safety_change(WHERE, GM, "lines", "spiders")
        await env.game.safety_change(WHERE, GM, "veils", "torture")
        with pytest.raises(UserInputError) as twice:
            await env.game.safety_change(WHERE, GM, "lines", "Spiders")
        assert str(twice.value) == "“Spiders” is already one of the table's lines."
        await env.act(ANN, "I open the crate", mentions_bot=True)
        await env.settle()
        system = env.model.turn_requests[-1].messages[0]["content"]
        assert ("Table safety (agreed by the players; always keep it):\n"
                "- Lines, never part of the story in any form: spiders.\n"
                "- Veils, may happen but only off screen (fade to black, no detail): torture.") in system
        await env.game.safety_change(WHERE, GM, "lines", "spiders", remove=True)
        safety = await env.game.safety_show(WHERE)
        assert (safety.lines, safety.veils) == ((), ("torture",))


async def test_the_xcard_rewrites_the_last_reply_for_anyone_and_never_says_who(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.push(reply("A swarm of spiders pours out of the crate."), reply("The crate holds old rope and a lantern."))
    async with make_env(tmp_path, model, turn_mode="mention") as env:
        await party_of(env, ANN, BOB)
        await env.act(ANN, "I open the crate", mentions_bot=True)
        await env.settle()
        await env.game.xcard(WHERE, "the spiders")  # Borin's player: neither the creator nor an admin
        assert [(r.kind, r.text) for r in env.narrator.turns] == [
            ("turn", "A swarm of spiders pours out of the crate."),
            ("retry", "The crate holds old rope and a lantern.")]
        final = env.model.turn_requests[-1].messages[-1]["content"]
        assert final.endswith("[Table]: " + XCARD_NOTE.format(what="this (a player's words): <<<the spiders>>>"))
        dm = [m.content for m in await env.store.story.transcript(1) if m.role == "dm"]
        assert dm == ["The crate holds old rope and a lantern."]
        assert (await env.game.safety_show(WHERE)).xcard_uses == 1
        texts = [r.text for r in env.narrator.replies]
        assert not any(BOB.name in t or ANN.name in t for t in texts)  # nobody is named to the table
