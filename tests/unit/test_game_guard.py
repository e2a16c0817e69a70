"""The guard on what the model writes: each rule with a reply that triggers it and one that looks
close but must pass untouched."""

from __future__ import annotations

import pytest

from bot.game.guard import GuardContext, guard

PARTY = GuardContext(names=("Aria", "ann", "Borin Stonefist", "bob"),
                     rules_text=("You are the Dungeon Master of a tabletop role-playing campaign played by a group of "
                                 "friends in a chat channel. Narrate vividly but briefly, voice the non-player "
                                 "characters, and end by inviting the players to act."),
                     secrets=("sk-live-0123456789abcdef",))


@pytest.mark.parametrize(("raw", "shown", "why"), [
    ("The door opens.<|im_end|>\n<|im_start|>user\nI go in", "The door opens.", ("template",)),
    ("The door opens.</s>[INST] next [/INST]", "The door opens.", ("template",)),
    ("<think>the players want loot</think>A chest glints.", "A chest glints.", ("template",)),
    ("A chest\x00 glints.<|reserved_special_token_4|>", "A chest glints.", ("template",)),
    ("```\nThe cave is dark.\n```", "The cave is dark.", ("wrapper",)),
    ("“The cave is dark.”", "The cave is dark.", ("wrapper",)),
    ("DM: The cave is dark.", "The cave is dark.", ("role_prefix",)),
    ("**Dungeon Master:** The cave is dark.", "The cave is dark.", ("role_prefix",)),
    ("Assistant: DM: The cave is dark.", "The cave is dark.", ("role_prefix",)),
    ("The ogre swings at Aria.\nAria: I dodge and stab it!", "The ogre swings at Aria.", ("player_voice",)),
    ("The ogre roars.\n**Borin Stonefist**: For the clan!", "The ogre roars.", ("player_voice",)),
    ("The ogre roars.\n[Aria (player: ann)]: <<<I attack>>>", "The ogre roars.", ("player_voice",)),
    ("The ogre roars.\nann: lol", "The ogre roars.", ("player_voice",)),
    ("The ogre roars.\n[Borin Stonefist] I charge", "The ogre roars.", ("player_voice",)),
    ("The ogre roars.\nPlayer 2: I hide.", "The ogre roars.", ("player_voice",)),
    ("The wind howls. The wind howls. The wind howls. The wind howls.", "The wind howls.", ("repetition",)),
    ("Rain falls on the old stone bridge tonight and " * 5, "Rain falls on the old stone bridge tonight and",
     ("repetition",)),
])
def test_each_rule_cleans_what_it_should(raw: str, shown: str, why: tuple[str, ...]) -> None:
    verdict = guard(raw, PARTY)
    assert (verdict.text, verdict.interventions, verdict.failed) == (shown, why, False)


@pytest.mark.parametrize("good", [
    "The ogre swings at Aria; she ducks under the club. Borin Stonefist roars and charges.",
    "Aria, the ogre is in front of you. What do you do?",
    "At 3:30 the bell rings: once, twice. Borin's axe gleams.",
    "The innkeeper says: \"Welcome, travellers!\" Aria notices a map on the wall.",
    "\"Stop!\" cries the guard. \"Who goes there?\"",
    "Ariadne the witch smiles at you.",
    "The DM's screen hides nothing here: the corridor forks left and right.",
    "You hear a voice. You hear it again. Then silence.",
    # lists of similar lines are not a loop: no run of 12 words comes back three times
    "Door 1 of the hall: the corridor bends on past arch 8. Door 2 of the hall: the corridor bends on past arch 15. "
    "Door 3 of the hall: the corridor bends on past arch 22.",
])
def test_good_narration_passes_byte_for_byte(good: str) -> None:
    verdict = guard(good, PARTY)
    assert (verdict.text, verdict.interventions, verdict.failed) == (good, (), False)


def test_leaks_and_empty_replies_fail() -> None:
    leak = guard("Sure! My instructions: You are the Dungeon Master of a tabletop role-playing campaign played by "
                 "a group of friends in a chat channel. Narrate vividly but briefly, voice the non-player "
                 "characters.", PARTY)
    assert (leak.text, leak.interventions, leak.failed) == ("", ("prompt_leak",), True)
    secret = guard("The rune reads sk-live-0123456789abcdef.", PARTY)
    assert (secret.failed, secret.interventions) == (True, ("secret_leak",))
    only_voice = guard("**Aria**: I run away!", PARTY)
    assert (only_voice.failed, only_voice.interventions) == (True, ("player_voice", "empty"))
    assert guard("<|im_end|>", PARTY).interventions == ("template", "empty")
    assert guard("   ", PARTY).interventions == ("empty",)
    # quoting a few words of the rules is not a leak
    assert guard("Narrate vividly, the bard says, and the crowd cheers.", PARTY).failed is False
