"""Child process for the kill -9 test: runs the game core on a database file and a model endpoint,
reads actions from stdin (``author_id|name|text|message_id``) and prints ``QUEUED <story id>`` once each
is committed. The parent kills it with SIGKILL mid-turn."""

from __future__ import annotations

import asyncio
import sys

from bot.game.api import Actor, ChannelRef, IncomingMessage
from tests.support.game_helpers import fast_settings, running_game


async def main(data_dir: str, base_url: str) -> None:
    settings = fast_settings(__import__("pathlib").Path(data_dir), llm_timeout_seconds=600,
                             llm_deadline_seconds=900, llm_max_attempts=1)
    async with running_game(settings, base_url) as (game, _narrator, _store):
        where = ChannelRef(1, 10)
        await game.start_campaign(where, Actor(1, "gm", True), title="Doomed")
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                await asyncio.sleep(3600)
            author, name, text, mid = line.rstrip("\n").split("|")
            intake = await game.handle_message(IncomingMessage(1, 10, int(author), name, text, int(mid)))
            print(f"{intake.status.upper()} {intake.story_message_id}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
