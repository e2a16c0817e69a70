"""The guard step of the turn pipeline: what the guard checks each narration against (the party's
names, the DM rules of the system prompt, the process's secrets), and the count and log of what it
did (per campaign and rule, never the text)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.config import Settings
from bot.game import guard
from bot.game.guard import GuardContext, Intervention, Verdict
from bot.game.session import GameSession
from bot.store import Store

log = logging.getLogger(__name__)

CAMPAIGN_SECTION = "\nThe campaign:"  # where the DM rules end in the system prompt (bot/game/prompts)


class GuardStep:
    """Checks narrations for the pipeline.

    Args:
        store: where interventions are counted.
        settings: the secrets that must never reach the table (model key, Discord token).
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        secrets = [settings.openai_api_key, settings.discord_token]
        self.secrets = tuple(s.get_secret_value() for s in secrets if s is not None and s.get_secret_value())

    def context(self, session: GameSession) -> GuardContext:
        """The party's character and player names, the DM rules text and the secrets."""
        names = tuple(n for c in session.party for n in (c.name, c.player_name))
        rules = session.system_text().split(CAMPAIGN_SECTION, 1)[0]
        return GuardContext(names=names, rules_text=rules, secrets=self.secrets)

    def check(self, session: GameSession, text: str) -> Verdict:
        """The guard's verdict on ``text`` for this session."""
        return guard.guard(text, self.context(session))

    async def record(self, session: GameSession, interventions: Sequence[Intervention | str]) -> None:
        """Count and log (INFO, without the text) what the guard did; a database problem is logged."""
        if not interventions:
            return
        log.info("campaign %s: the guard stepped in: %s", session.campaign.id, ", ".join(interventions))
        try:
            await self.store.guard.bump(session.campaign.id, interventions)
        except Exception:
            log.exception("counting guard interventions failed")
