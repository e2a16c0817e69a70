"""Persistence in SQLite (the default) or PostgreSQL (``DATABASE_URL``), behind one API
(``bot.store.db``). All SQL of the bot lives in this package; callers use named methods.

``Store(db)`` groups one object per aggregate: ``campaigns``, ``characters``, ``story``,
``summaries``, ``chapters``, ``lore``, ``search``, ``encounters``, ``usage``, ``guild_config``,
``refused``, ``leases``, ``journal``, ``pace``.
"""

from __future__ import annotations

from bot.store.campaigns import CampaignStore
from bot.store.chapters import ChapterDraft, ChapterStore
from bot.store.characters import CharacterStore
from bot.store.db import Database, DatabaseUnavailable, IntegrityError, MigrationError
from bot.store.encounters import EncounterStore
from bot.store.guard import GuardStore
from bot.store.guild_config import GuildConfigStore, default_guild_config
from bot.store.journal import JournalStore
from bot.store.leases import LeaseStore
from bot.store.lore import LoreStore
from bot.store.pace import PaceStore
from bot.store.refused import RefusedStore
from bot.store.safety import SafetyStore
from bot.store.search import SearchStore
from bot.store.story import StoryStore
from bot.store.summaries import SummaryStore
from bot.store.usage import UsageStore, utc_day


class Store:
    """Every named query of the bot, grouped by aggregate, over one ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.campaigns = CampaignStore(db)
        self.characters = CharacterStore(db)
        self.story = StoryStore(db)
        self.summaries = SummaryStore(db)
        self.chapters = ChapterStore(db)
        self.lore = LoreStore(db)
        self.search = SearchStore(db)
        self.encounters = EncounterStore(db)
        self.guard = GuardStore(db)
        self.safety = SafetyStore(db)
        self.usage = UsageStore(db)
        self.guild_config = GuildConfigStore(db)
        self.refused = RefusedStore(db)
        self.leases = LeaseStore(db)
        self.journal = JournalStore(db)
        self.pace = PaceStore(db)


__all__ = ["ChapterDraft", "Database", "DatabaseUnavailable", "IntegrityError", "MigrationError", "Store",
           "default_guild_config", "utc_day"]
