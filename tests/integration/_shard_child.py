"""Child process for the several-processes tests: one bot process's game core on a shared database.

Settings come from the environment (``DATABASE_URL``, ``DISCORD_SHARD_COUNT``, ``DISCORD_SHARD_IDS``)
and argv (data dir, model URL). Commands on stdin, one a line, answered on stdout:

    start <guild> <channel>                     -> STARTED <campaign id>  (a campaign, one character)
    act <guild> <channel> <author> <mid> <text> -> QUEUED <id> | IGNORED <reason> | REFUSED <reason>

Every DM reply delivered prints ``REPLY <channel> <turn> <text>``. ``READY`` once started; ``EOF``
when stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.game.api import Actor, ChannelRef, CharacterSheetInput, DMReply, IncomingMessage
from tests.support.doubles import RecordingNarrator
from tests.support.game_helpers import fast_settings, running_game


class PrintingNarrator(RecordingNarrator):
    """Prints each turn's reply for the parent."""

    async def deliver(self, reply: DMReply) -> None:
        await super().deliver(reply)
        if reply.kind != "notice":
            print(f"REPLY {reply.channel_id} {reply.turn} {reply.text}", flush=True)


async def main(data_dir: str, base_url: str) -> None:
    settings = fast_settings(Path(data_dir), turn_window_seconds=0.2, turn_max_window_seconds=0.5)
    async with running_game(settings, base_url, narrator=PrintingNarrator()) as (game, _narrator, _store):
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            word, *args = line.rstrip("\n").split(" ", 5)
            if word == "start":
                guild, channel = int(args[0]), int(args[1])
                where = ChannelRef(guild, channel)
                campaign = await game.start_campaign(where, Actor(1, "gm", True), title=f"Keep {guild}")
                await game.join(where, Actor(101, "ann"), CharacterSheetInput("Aria", "Rogue", "Elf"))
                print(f"STARTED {campaign.id}", flush=True)
            elif word == "act":
                guild, channel, author, mid, text = int(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4]
                intake = await game.handle_message(IncomingMessage(guild, channel, author, "ann", text, mid))
                detail = intake.story_message_id if intake.status == "queued" else intake.reason
                print(f"{intake.status.upper()} {detail}", flush=True)
        print("EOF", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
