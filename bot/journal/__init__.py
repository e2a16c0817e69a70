"""The campaign journal: read-only web pages per campaign and a usage page per server
(``bot.journal.server``), reached through links issued by ``/campaign journal`` and ``/config journal``."""
