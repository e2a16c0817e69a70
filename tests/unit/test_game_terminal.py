"""Terminal play over the same core and database: players by name, commands, printed replies."""

from __future__ import annotations

import io
from pathlib import Path

from bot.config import load_settings
from bot.store import Database, Store
from bot.terminal import HELP, play, player_id, split_speaker
from tests.support.doubles import ScriptedModel, reply

SCRIPT = """\
/start The Sunken Crypt | A drowned temple | grim
Aria: /join Aria Rogue Elf Raised by bats in the old bell tower
Borin: /join Borin Fighter Dwarf
Aria: I search the altar
Borin: I guard the door
((is this thing on?))
/roll 1d20+3 initiative
/sheet Borin
/status
Aria: I pry the gem loose
Borin: I keep watch
/undo
/retry
/export {export}
/recap
/help
/quit
Borin: never read
"""


def test_speaker_lines() -> None:
    assert split_speaker("Aria: I search the altar", "You") == ("Aria", "I search the altar")
    assert split_speaker("I say: hello", "Aria") == ("Aria", "I say: hello")  # a space: not a name
    assert split_speaker("Borin: /join Borin Fighter Dwarf", "Aria") == ("Borin", "/join Borin Fighter Dwarf")
    assert split_speaker("/roll 1d20", "Aria") == ("Aria", "/roll 1d20")
    assert split_speaker("http://example.com", "Aria") == ("Aria", "http://example.com")
    assert player_id("Aria") == player_id(" aria ") != player_id("Borin") and player_id("x") > 0
    assert "/join <name> <class> <ancestry>" in HELP and "/quit" in HELP


async def test_terminal_plays_a_session_through_the_core(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.push(reply("", ("roll_dice", {"expression": "1d20+2", "reason": "Investigation", "character": "Aria"})),
               reply("Aria finds a hidden gem; Borin hears dripping."),
               reply("The gem comes loose."), reply("The gem stays put, humming."))
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=5,
                             turn_extend_seconds=1, turn_max_window_seconds=10, player_cooldown_seconds=0)
    export = tmp_path / "transcript.md"
    out = io.StringIO()
    assert await play(settings, channel_id=3, inp=io.StringIO(SCRIPT.format(export=export)), out=out, llm=model) == 0
    text = out.getvalue()
    assert "Campaign 'The Sunken Crypt' begins." in text
    assert "Aria (Elf Rogue, HP 10/10, AC 14) joins the party, played by Aria." in text
    assert "  [dice] Aria (Investigation): 1d20 (" in text  # the DM's roll, with its breakdown
    assert "DM: Aria finds a hidden gem; Borin hears dripping." in text
    assert "(out of character: not sent to the DM)" in text
    assert "  [dice] Borin: 1d20 (" in text and "Borin: level 1 Dwarf Fighter, HP 12/12, AC 16" in text
    assert "The Sunken Crypt (active), turn 1; party: Aria HP 10/10, Borin HP 12/12; waiting actions: 0" in text
    assert "DM: The gem comes loose." in text and "Turn 2 taken back (3 messages)." in text
    assert "DM (again): The gem stays put, humming." in text  # /retry regenerated turn 1
    assert "## The Sunken Crypt — the story so far" in text
    assert "never read" not in text
    # both players' actions went to the DM in one group turn, labelled by character
    first = model.turn_requests[0].messages[-1]["content"]
    assert "[Aria (player: Aria)]: <<<I search the altar>>>\n[Borin (player: Borin)]: <<<I guard the door>>>" in first
    transcript = export.read_text(encoding="utf-8")
    assert transcript.startswith("# The Sunken Crypt") and "I pry the gem loose" not in transcript
    assert "The gem stays put, humming." in transcript and "Aria finds a hidden gem" not in transcript
    async with Database.open(settings.database_path) as db:  # the same database the bot uses
        campaign = await Store(db).campaigns.live_in_channel(3)
        assert campaign is not None and campaign.title == "The Sunken Crypt" and campaign.turn == 1


async def test_terminal_waits_for_the_last_turn_at_end_of_input(tmp_path: Path) -> None:
    model = ScriptedModel(default=lambda m: reply("You hear a click."))
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=0.05,
                             turn_extend_seconds=0.01, turn_max_window_seconds=0.1, player_cooldown_seconds=0)
    out = io.StringIO()
    script = "/start Quick\nI press the button\n/bogus\n/join OnlyName\n"
    await play(settings, inp=io.StringIO(script), out=out, llm=model)
    text = out.getvalue()
    assert "DM: You hear a click." in text  # answered after EOF, before play() returned
    assert "Unknown command /bogus." in text and "Usage: /join" in text
    out2 = io.StringIO()
    await play(settings, inp=io.StringIO("/start Again\n"), out=out2, llm=model)
    assert "already has a campaign" in out2.getvalue()  # errors are printed, play goes on
