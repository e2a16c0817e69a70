"""Search over a whole campaign: the story, the chronicle's chapters and the lorebook.

SQLite: FTS5 indexes (kept in step by triggers, see migration 0003) ranked by bm25. PostgreSQL: GIN
indexes over ``to_tsvector('simple', ...)`` (migrations/postgres/0010) ranked by ``ts_rank``, with
``ts_headline`` snippets. Both match every word, each as the start of a word, without stemming
(SQLite also folds diacritics; PostgreSQL's 'simple' configuration does not).

What people type is never query syntax: each word becomes a quoted term (all must match; a word may
be the start of a longer one), so quotes, colons and operators in a query are just text.
"""

from __future__ import annotations

import re
from typing import Any

from bot.models import SearchHit
from bot.store.db import Database

MAX_TERMS = 8
_WORD = re.compile(r"\w+", re.UNICODE)
SNIPPET_TOKENS = 12  # words around the match in a snippet


def tsquery_expression(query: str) -> str | None:
    """PostgreSQL's ``to_tsquery('simple', ...)`` text for what a person typed: up to ``MAX_TERMS``
    prefix terms (``word:*``), all required; None when the query holds no word."""
    words = [w.replace("'", "") for w in _WORD.findall(query)[:MAX_TERMS]]
    words = [w for w in words if w]
    if not words:
        return None
    return " & ".join(f"'{w}':*" for w in words)


_HEADLINE = "StartSel=**, StopSel=**, MaxWords=24, MinWords=8, MaxFragments=1, FragmentDelimiter=…"
_EXCERPT = "StartSel=\"\", StopSel=\"\", MaxWords=32, MinWords=12, MaxFragments=1, FragmentDelimiter=…"
_LORE_TEXT = "e.name || ' ' || e.aliases || ' ' || e.description"


def match_expression(query: str) -> str | None:
    """The FTS5 MATCH text for what a person typed: up to ``MAX_TERMS`` quoted prefix terms, all
    required; None when the query holds no word."""
    words = _WORD.findall(query)[:MAX_TERMS]
    if not words:
        return None
    return " ".join(f'"{w}"*' for w in words)


class SearchStore:
    """Full-text queries over ``story_fts``, ``chapters_fts`` and ``lore_fts``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, campaign_id: int, query: str, *, include_secrets: bool = False,
                     limit: int = 10) -> list[SearchHit]:
        """The best ``limit`` matches of ``query`` across live story messages (not undone, not
        pending), chapters and live lore entries (secrets only with ``include_secrets``), best first.
        An empty or wordless query finds nothing."""
        if self.db.dialect == "postgresql":
            return await self._search_postgres(campaign_id, query, include_secrets, limit)
        expression = match_expression(query)
        if expression is None:
            return []
        params: tuple[Any, ...] = (expression, campaign_id, limit)
        story = await self.db.fetchall(
            "SELECT m.id, m.turn, m.role, COALESCE(m.character_name, m.author_name) AS who,"
            f" snippet(story_fts, 0, '**', '**', '…', {SNIPPET_TOKENS}) AS snip, bm25(story_fts) AS rank"
            " FROM story_fts JOIN story_messages m ON m.id = story_fts.rowid"
            " WHERE story_fts MATCH ? AND m.campaign_id = ? AND m.state = 'answered'"
            " ORDER BY rank LIMIT ?", params)
        chapters = await self.db.fetchall(
            "SELECT c.id, c.number, c.first_turn,"
            f" snippet(chapters_fts, 0, '**', '**', '…', {SNIPPET_TOKENS}) AS snip, bm25(chapters_fts) AS rank"
            " FROM chapters_fts JOIN chapters c ON c.id = chapters_fts.rowid"
            " WHERE chapters_fts MATCH ? AND c.campaign_id = ? ORDER BY rank LIMIT ?", params)
        lore = await self.db.fetchall(
            "SELECT e.id, e.name, e.kind, e.created_turn,"
            f" snippet(lore_fts, 2, '**', '**', '…', {SNIPPET_TOKENS}) AS snip, bm25(lore_fts) AS rank"
            " FROM lore_fts JOIN lore_entries e ON e.id = lore_fts.rowid"
            " WHERE lore_fts MATCH ? AND e.campaign_id = ? AND e.live = 1"
            + ("" if include_secrets else " AND e.secret = 0") + " ORDER BY rank LIMIT ?", params)
        return self._merge(story, chapters, lore, limit)

    async def _search_postgres(self, campaign_id: int, query: str, include_secrets: bool,
                               limit: int) -> list[SearchHit]:
        expression = tsquery_expression(query)
        if expression is None:
            return []
        params: tuple[Any, ...] = (expression, campaign_id, limit)
        story = await self.db.fetchall(
            "SELECT m.id, m.turn, m.role, COALESCE(m.character_name, m.author_name) AS who,"
            f" ts_headline('simple', m.content, q, '{_HEADLINE}') AS snip,"
            " -ts_rank(to_tsvector('simple', m.content), q) AS rank"
            " FROM story_messages m, to_tsquery('simple', ?) q"
            " WHERE to_tsvector('simple', m.content) @@ q AND m.campaign_id = ? AND m.state = 'answered'"
            " ORDER BY rank LIMIT ?", params)
        chapters = await self.db.fetchall(
            "SELECT c.id, c.number, c.first_turn,"
            f" ts_headline('simple', c.content, q, '{_HEADLINE}') AS snip,"
            " -ts_rank(to_tsvector('simple', c.content), q) AS rank"
            " FROM chapters c, to_tsquery('simple', ?) q"
            " WHERE to_tsvector('simple', c.content) @@ q AND c.campaign_id = ? ORDER BY rank LIMIT ?", params)
        lore = await self.db.fetchall(
            "SELECT e.id, e.name, e.kind, e.created_turn,"
            f" ts_headline('simple', e.description, q, '{_HEADLINE}') AS snip,"
            f" -ts_rank(to_tsvector('simple', {_LORE_TEXT}), q) AS rank"
            " FROM lore_entries e, to_tsquery('simple', ?) q"
            f" WHERE to_tsvector('simple', {_LORE_TEXT}) @@ q AND e.campaign_id = ? AND e.live = 1"
            + ("" if include_secrets else " AND e.secret = 0") + " ORDER BY rank LIMIT ?", params)
        return self._merge(story, chapters, lore, limit)

    @staticmethod
    def _merge(story: list[Any], chapters: list[Any], lore: list[Any], limit: int) -> list[SearchHit]:
        hits = [SearchHit("story", r["id"], r["turn"], "DM" if r["role"] == "dm" else str(r["who"]), r["snip"],
                          float(r["rank"])) for r in story]
        hits += [SearchHit("chapter", r["id"], r["first_turn"], f"Chapter {r['number']}", r["snip"],
                           float(r["rank"])) for r in chapters]
        hits += [SearchHit("lore", r["id"], r["created_turn"], f"{r['name']} ({r['kind']})",
                           r["snip"] or r["name"], float(r["rank"])) for r in lore]
        hits.sort(key=lambda h: h.rank)  # bm25 and -ts_rank: lower is better
        return hits[:limit]

    async def chapter_excerpt(self, campaign_id: int, word: str) -> tuple[int, str] | None:
        """The chapter that best matches ``word`` (bm25) as ``(number, excerpt)``, the excerpt a
        few words around the match; None when no chapter has it."""
        if self.db.dialect == "postgresql":
            pg_expression = tsquery_expression(word)
            if pg_expression is None:
                return None
            pg_row = await self.db.fetchone(
                f"SELECT c.number, ts_headline('simple', c.content, q, '{_EXCERPT}') AS snip"
                " FROM chapters c, to_tsquery('simple', ?) q WHERE to_tsvector('simple', c.content) @@ q"
                " AND c.campaign_id = ? ORDER BY ts_rank(to_tsvector('simple', c.content), q) DESC LIMIT 1",
                (pg_expression, campaign_id))
            return (int(pg_row["number"]), str(pg_row["snip"])) if pg_row else None
        expression = match_expression(word)
        if expression is None:
            return None
        row = await self.db.fetchone(
            "SELECT c.number, snippet(chapters_fts, 0, '', '', '…', 16) AS snip FROM chapters_fts"
            " JOIN chapters c ON c.id = chapters_fts.rowid WHERE chapters_fts MATCH ? AND c.campaign_id = ?"
            " ORDER BY bm25(chapters_fts) LIMIT 1", (expression, campaign_id))
        return (int(row["number"]), str(row["snip"])) if row else None
