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


LORE_SCRIPT = """\
/start The Sunken Crypt
Aria: /join Aria Rogue Elf
Aria: /lore add npc Marta | Runs the Drowned Dog | the innkeeper, Old Marta
/lore add secret fact The bell's curse | Whoever rings it drowns
Aria: /lore show the innkeeper
Aria: /lore edit Marta | description: A dragon in disguise | kind: faction
/lore history Marta
/lore revert Marta 1
/lore pin Marta
/lore quest
/lore
Aria: I ask Marta about the silver bell
/search drowns
/search silver bell
/recap 2
/recap
/lore forget Marta
/lore show Marta
/lore frobnicate
"""


async def test_terminal_keeps_the_lorebook_searches_and_recaps(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.push(reply("Marta whispers that the silver bell sank with the temple."))
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=5,
                             turn_extend_seconds=1, turn_max_window_seconds=10, player_cooldown_seconds=0)
    out = io.StringIO()
    await play(settings, channel_id=4, inp=io.StringIO(LORE_SCRIPT), out=out, llm=model)
    lines = out.getvalue().splitlines()
    expected = [
        "Added to the lorebook: Marta (npc; aka the innkeeper, Old Marta): Runs the Drowned Dog",
        "Added to the lorebook: The bell's curse (fact; DM secret): Whoever rings it drowns",
        "Marta (npc; aka the innkeeper, Old Marta): Runs the Drowned Dog",
        "Updated: Marta (faction; aka the innkeeper, Old Marta): A dragon in disguise",
        "Marta, changes oldest first:",
        "Reverted: Marta (npc; aka the innkeeper, Old Marta): Runs the Drowned Dog",
        "Marta is pinned.",
        "The lorebook is empty.",  # no quests
        "- Marta (npc; aka the innkeeper, Old Marta; pinned): Runs the Drowned Dog",
        "- The bell's curse (fact; DM secret): Whoever rings it drowns",
        "DM: Marta whispers that the silver bell sank with the temple.",
        "- [lorebook, The bell's curse (fact)] Whoever rings it **drowns**",
        "- [turn 1, Aria] I ask Marta about the **silver** **bell**",
        "- [turn 1, DM] Marta whispers that the **silver** **bell** sank with the temple.",
        "  (The chronicle has no chapters yet: the DM writes one each time it folds older story into its memory.)",
        "## The Sunken Crypt — the story so far",
        "Marta is out of the lorebook.",
        "  (The lorebook has no entry called “Marta”. `/lore list` shows what it holds.)",
        "Unknown /lore command 'frobnicate'. /help lists them.",
    ]
    at = [lines.index(line) for line in expected]  # every line is there, in this order
    assert at == sorted(at)
    history = lines[at[4] + 1:at[5]]  # terminal players are the campaign's admins
    assert [h.split(", 20")[0] for h in history] == ["  #1 turn 0: create by Aria (admin)",
                                                     "  #3 turn 0: update by Aria (admin)"]
    assert all(h.endswith(" UTC") for h in history)


class WritesLog(io.StringIO):
    """An output stream that notes, for each write, how many pieces the model had streamed by then."""

    def __init__(self, model: ScriptedModel) -> None:
        super().__init__()
        self.model = model
        self.writes: list[tuple[str, int]] = []

    def write(self, text: str) -> int:
        self.writes.append((text, len(self.model.streamed)))
        return super().write(text)


async def test_terminal_prints_the_narration_while_the_model_writes_it(tmp_path: Path) -> None:
    scene = "The tide pours through the broken wall. Borin braces the door while Aria climbs the shelves."
    model = ScriptedModel()
    model.push(reply(scene))
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=0,
                             player_cooldown_seconds=0)
    out = WritesLog(model)
    script = "/start The Sunken Crypt\nAria: /join Aria Rogue Elf\nAria: I climb\n/quit\n"
    assert await play(settings, channel_id=3, inp=io.StringIO(script), out=out, llm=model) == 0
    pieces = len(model.streamed)
    assert "".join(model.streamed) == scene and pieces == 14  # 7-character pieces
    opened = next(i for i, (text, _) in enumerate(out.writes) if text.startswith("\nDM: "))
    # 5 pieces in, the 33 whole characters "The tide pours through the broken" open the reply
    assert out.writes[opened] == ("\nDM: The tide pours through the broken", 5)
    narration = "".join(text for text, _ in out.writes[opened:])
    assert narration.startswith(f"\nDM: {scene}\n")


async def test_terminal_shows_the_pace_and_plays_rounds(tmp_path: Path) -> None:
    model = ScriptedModel(default=lambda m: reply("The road bends north."))
    settings = load_settings(None, data_dir=str(tmp_path), openai_api_key="sk-test", turn_window_seconds=0.05,
                             turn_extend_seconds=0.01, turn_max_window_seconds=0.1, player_cooldown_seconds=0)
    script = ("/start Quiet Road\nAria: /join Aria Rogue Elf\nBorin: /join Borin Fighter Dwarf\n/pace rounds 8 0\n"
              "Aria: I scout ahead\n/status\nBorin: /away\n/status\n/pace slow\n")
    out = io.StringIO()
    assert await play(settings, inp=io.StringIO(script), out=out, llm=model) == 0
    lines = out.getvalue().splitlines()
    assert "Pace: rounds (set for this campaign)" in lines
    assert "Pace: rounds (set for this campaign); the round closes in 8 h; waiting for Borin" in lines
    assert "Borin is away: the DM does not wait for them in rounds." in lines
    assert "Pace: rounds (set for this campaign); away: Borin" in lines  # Aria's round was answered
    assert sum(line == "DM: The road bends north." for line in lines) == 1
    assert "The pace is `auto`, `live`, `rounds` or `default` (the server's)." in out.getvalue()
