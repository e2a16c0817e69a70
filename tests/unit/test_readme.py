"""The README documents every setting and every slash command the bot actually registers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

import discord

from bot.app import COGS, DungeonMasterBot
from bot.config import Settings, load_settings
from bot.models import GuildConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPECTED_COMMANDS = [
    "/campaign start", "/campaign end", "/campaign pause", "/campaign resume", "/campaign status",
    "/campaign recap", "/campaign search", "/campaign export", "/campaign journal link", "/campaign journal revoke",
    "/campaign pace", "/campaign reminders",
    "/join", "/character show", "/character edit", "/character leave",
    "/lore show", "/lore list", "/lore add", "/lore edit", "/lore forget", "/lore pin", "/lore history",
    "/lore revert",
    "/combat show", "/combat next", "/combat add", "/combat remove", "/combat end", "/combat init",
    "/safety show", "/safety add", "/safety remove", "/xcard",
    "/act", "/retry", "/undo", "/away",
    "/roll",
    "/config show", "/config set", "/config journal", "/usage", "/admin sync",
]


def test_every_setting_is_documented() -> None:
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in README]
    assert missing == []


def test_every_server_option_is_documented() -> None:
    missing = [key for key in GuildConfig.keys() if f"`{key}`" not in README]
    assert missing == []


async def test_every_slash_command_is_documented() -> None:
    # registering the commands touches neither the store, the model nor the game: stand-ins will do
    bot = DungeonMasterBot(settings=load_settings(None), store=cast(Any, None), llm=cast(Any, None),
                           game=cast(Any, object()))
    for name in COGS:
        await bot.load_extension(name)
    names: list[str] = []
    def walk(command: Any, prefix: str) -> None:
        if isinstance(command, discord.app_commands.Group):
            for sub in command.commands:
                walk(sub, f"{prefix}{command.name} ")
        else:
            names.append(f"/{prefix}{command.name}")

    for command in bot.tree.get_commands():
        walk(command, "")
    # counted by hand from the decorators in cogs/ (campaign 10 + journal 2, character 4, lore 8, combat 6,
    # safety 3 + xcard, play 4, dice 1, admin 5)
    assert sorted(names) == sorted(EXPECTED_COMMANDS) and len(names) == 44
    undocumented = []
    for full in names:
        group, _, sub = full.rpartition(" ")
        if f"`{full}`" not in README and not (group and f"`{group} " in README and f"`{sub}`" in README):
            undocumented.append(full)
    assert undocumented == []


def test_readme_commands_exist() -> None:
    assert (ROOT / "scripts" / "run.sh").is_file() and "scripts/run.sh" in README
    assert (ROOT / "scripts" / "test.sh").is_file() and "scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_every_cli_command_is_documented() -> None:
    from bot.__main__ import COMMANDS, build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser_commands = set(subparsers.choices)
    assert parser_commands == set(COMMANDS)
    assert [c for c in COMMANDS if f"`{c}`" not in README] == []
