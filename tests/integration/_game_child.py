"""Child process for the kill -9 test: runs the game core on a database file and a model endpoint,
gives each author id in ``party`` (comma-separated) a character, reads actions from stdin
(``author_id|name|text|message_id``, one a line) and prints ``<STATUS> <story id>`` (``QUEUED 3``) once
each is committed. A turn's window is 30 s but closes as soon as the whole party has acted, so which
actions make up the turn does not depend on timing. The parent kills it with SIGKILL mid-turn; if
stdin closes first (the parent went away), it prints ``EOF`` and exits."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.game.api import Actor, ChannelRef, CharacterSheetInput, IncomingMessage
from tests.support.game_helpers import fast_settings, running_game


async def main(data_dir: str, base_url: str, party: str) -> None:
    """Start a campaign in channel 10 of guild 1 with ``party`` joined, print ``READY``, then feed
    stdin's actions to it."""
    settings = fast_settings(Path(data_dir), llm_timeout_seconds=600, llm_deadline_seconds=900, llm_max_attempts=1,
                             turn_window_seconds=30, turn_max_window_seconds=60)
    async with running_game(settings, base_url) as (game, _narrator, _store):
        where = ChannelRef(1, 10)
        await game.start_campaign(where, Actor(1, "gm", True), title="Doomed")
        for author in filter(None, party.split(",")):
            await game.join(where, Actor(int(author), f"p{author}"),
                            CharacterSheetInput(f"Hero{author}", "Fighter", "Human"))
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            author, name, text, mid = line.rstrip("\n").split("|")
            intake = await game.handle_message(IncomingMessage(1, 10, int(author), name, text, int(mid)))
            print(f"{intake.status.upper()} {intake.story_message_id}", flush=True)
        print("EOF", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
