"""Memory folding: old story becomes a permanent chapter, so the prompt stays bounded and nothing
that mattered is lost.

When the unsummarised story held in a session passes ``summary_trigger_tokens``, the oldest part (all
but about ``history_token_budget`` tokens of the newest messages, cut at a turn boundary) is folded,
after the turn's reply has been delivered, by one model call into a chapter of the chronicle (at most
``chapter_token_cap`` tokens, enforced by cutting at a sentence boundary) and the entities of that
span, which join the lorebook (``bot.game.chronicle``). The running summary in the system prompt is
rebuilt from the chapters, capped at ``summary_token_cap`` tokens. The summary and the chapter are
written in one transaction; if anything fails nothing is changed, and the fold is tried again a few
turns later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.config import Settings
from bot.game import chronicle
from bot.game.chronicle import SUMMARY_MARKER
from bot.game.context import message_cost
from bot.game.ledger import UsageLedger
from bot.game.ports import ModelPort, TokenCounter
from bot.game.session import GameSession
from bot.models import Chapter, StoryMessage
from bot.store import ChapterDraft, Store

log = logging.getLogger(__name__)

FOLD_RETRY_TURNS = 3  # after a failed memory fold, try again this many turns later
CHAPTER_HEADING_TOKENS = 20  # "Chapter 12 (turns 340-371): " and the line break, tokens
ENTITY_TOKENS = 600  # room for the entities list in a fold's answer, tokens (beyond the chapter)

__all__ = ["FOLD_RETRY_TURNS", "SUMMARY_MARKER", "FoldAbandoned", "FoldPlan", "MemoryKeeper", "cap_summary",
           "plan_fold", "unsummarised_tokens"]
@dataclass(frozen=True, slots=True)
class FoldPlan:
    """Which messages a fold covers: ``messages`` (oldest first) up to ``through_id``."""

    messages: tuple[StoryMessage, ...]
    through_id: int


def unsummarised_tokens(history: Sequence[StoryMessage]) -> int:
    """Prompt tokens the in-memory story would cost if sent whole (stored counts, no recounting)."""
    return sum(message_cost(m) for m in history)


def plan_fold(history: Sequence[StoryMessage], *, trigger_tokens: int, keep_tokens: int,
              below_id: int | None = None) -> FoldPlan | None:
    """Plan a fold when ``history`` (the unsummarised answered story in story order, i.e. by turn
    then id) costs more than ``trigger_tokens`` tokens: fold everything except at least the newest
    ``keep_tokens`` worth, ending on a DM reply (a turn boundary). Returns None when no fold is due
    or possible.

    The store marks "everything up to message id N" as summarised and reloads "everything after id
    N", so the folded prefix must hold exactly the messages with ids <= its largest id: the cut
    only falls where every folded id is smaller than every kept id (an action queued while the
    previous reply was being written has a smaller id than that reply but belongs to the next
    turn), and, with ``below_id`` (the oldest still-pending action), below that id too.
    """
    if unsummarised_tokens(history) <= trigger_tokens:
        return None
    n = len(history)
    kept = 0
    cut = n
    for i in range(n - 1, -1, -1):
        kept += message_cost(history[i])
        if kept > keep_tokens:
            cut = i + 1
            break
    else:
        return None
    suffix_min = [0] * (n + 1)
    suffix_min[n] = below_id if below_id is not None else 2 ** 62
    for i in range(n - 1, -1, -1):
        suffix_min[i] = min(history[i].id, suffix_min[i + 1])
    prefix_max = [0] * (n + 1)
    for i in range(n):
        prefix_max[i + 1] = max(prefix_max[i], history[i].id)
    while cut > 0 and (history[cut - 1].role != "dm" or prefix_max[cut] >= suffix_min[cut]):
        cut -= 1
    if cut <= 0:
        return None
    folded = tuple(history[:cut])
    return FoldPlan(folded, prefix_max[cut])


def cap_summary(text: str, cap_tokens: int, count: Callable[[str], int]) -> str:
    """Cut ``text`` to at most ``cap_tokens`` tokens (``count(text) -> tokens``), at a sentence end
    when one lies in the second half of the allowed text."""
    text = text.strip()
    if count(text) <= cap_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix within the cap (binary search on characters)
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= cap_tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("! "), cut.rfind("? "))
    if end > len(cut) // 2:
        cut = cut[:end + 1]
    return cut.strip()


class FoldAbandoned(Exception):
    """A fold could not be finished (empty summary, or the story changed meanwhile); nothing was
    changed and it is tried again later."""


class MemoryKeeper:
    """Runs one session's memory folds in the background, one at a time, after delivered turns.

    Args:
        session: the channel's state (its history and summary are replaced by a fold).
        store: where the summary is kept.
        model: the model client (one call per fold, purpose "summary").
        ledger: records the call's usage.
        settings: ``summary_trigger_tokens``, ``history_token_budget``, ``summary_token_cap`` (tokens),
            ``summary_model`` (empty: the server's model).
        count: the token counter.
    """

    def __init__(self, session: GameSession, store: Store, model: ModelPort, ledger: UsageLedger,
                 settings: Settings, count: TokenCounter) -> None:
        self.session = session
        self.store = store
        self.model = model
        self.ledger = ledger
        self.settings = settings
        self.count = count
        self._task: asyncio.Task[bool] | None = None
        self._after_turn = 0

    @property
    def running(self) -> bool:
        """True while a fold is in progress."""
        return self._task is not None and not self._task.done()

    def maybe_fold(self) -> None:
        """Schedule a background fold when the unsummarised story passed the trigger."""
        session, s = self.session, self.settings
        if session.closed or self.running or session.campaign.turn < self._after_turn:
            return
        plan = plan_fold(session.history, trigger_tokens=s.summary_trigger_tokens,
                         keep_tokens=s.history_token_budget,
                         below_id=min((p.id for p in session.pending), default=None))
        if plan is not None:
            self._task = asyncio.create_task(self.fold(plan), name=f"fold-{session.channel_id}")

    async def fold(self, plan: FoldPlan) -> bool:
        """Fold ``plan`` into a new chapter (one model call), rebuild the running summary from the
        chapters, and merge the span's entities into the lorebook. On any failure before the write
        nothing changes and the fold is tried again ``FOLD_RETRY_TURNS`` turns later. Returns True
        when the chapter was written."""
        session, s = self.session, self.settings
        model = s.summary_model or session.config.model
        # a chapter always fits the running summary whole, with its heading
        chapter_cap = max(20, min(s.chapter_token_cap, s.summary_token_cap - CHAPTER_HEADING_TOKENS))
        try:
            previous = await self.store.chapters.latest(session.campaign.id)
            result = await self.model.chat(
                chronicle.fold_messages(previous[-1] if previous else None, plan.messages, chapter_cap),
                model=model, temperature=0.3, max_tokens=chapter_cap + ENTITY_TOKENS)
            await self.ledger.record(session.campaign, [], "summary", [result])
            reply = chronicle.parse_fold_reply(result.text or "")
            text = cap_summary(reply.chapter, chapter_cap, lambda t: self.count(t, model))
            if not text:
                raise FoldAbandoned("the model returned an empty chapter")
            async with session.lock:
                if [m.id for m in session.history[:len(plan.messages)]] != [m.id for m in plan.messages]:
                    raise FoldAbandoned("the story changed (undo/retry) while summarising")
                draft = self._draft(plan, text, session.config.model)
                chapters = await self.store.chapters.all(session.campaign.id)
                pending = Chapter(0, session.campaign.id, len(chapters) + 1, draft.first_turn, draft.last_turn,
                                  draft.through_message_id, draft.started_at, draft.ended_at, draft.content,
                                  draft.token_count, 0.0)
                so_far = cap_summary(chronicle.story_so_far([*chapters, pending], s.summary_token_cap,
                                                            self._count_for_session),
                                     s.summary_token_cap, self._count_for_session)
                summary, chapter = await self.store.summaries.fold(
                    session.campaign.id, content=so_far, token_count=self.count(so_far, session.config.model),
                    through_message_id=plan.through_id, chapter=draft)
                session.set_summary(summary, len(plan.messages))
                merged = await self._merge(reply.entities, draft.last_turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("memory fold for campaign %s failed (%s: %s); will retry in %d turns",
                        session.campaign.id, type(exc).__name__, exc, FOLD_RETRY_TURNS)
            self._after_turn = session.campaign.turn + FOLD_RETRY_TURNS
            return False
        log.info("campaign %s: folded %d messages into chapter %s (%d tokens); %d lore entries from it",
                 session.campaign.id, len(plan.messages), chapter.number if chapter else "?", draft.token_count,
                 merged)
        return True

    def _count_for_session(self, text: str) -> int:
        return self.count(text, self.session.config.model)

    def _draft(self, plan: FoldPlan, text: str, model: str) -> ChapterDraft:
        turns = [m.turn for m in plan.messages]
        return ChapterDraft(first_turn=max(1, min(turns)), last_turn=max(1, max(turns)),
                            through_message_id=plan.through_id,
                            started_at=plan.messages[0].created_at, ended_at=plan.messages[-1].created_at,
                            content=text, token_count=self.count(text, model))

    async def _merge(self, entities: Sequence[chronicle.EntityDraft], turn: int) -> int:
        """Merge a fold's entities into the lorebook (author "extract"); a failure of one entity is
        logged and skips it (the chapter is already written). Returns how many entries changed."""
        session = self.session
        changed = 0
        for draft in entities:
            try:
                entry, changes = chronicle.merge_entity(session.lore, draft)
                if entry is None:
                    created = await self.store.lore.create(
                        campaign_id=session.campaign.id, kind=draft.kind, name=draft.name, aliases=draft.aliases,
                        description=draft.description, token_count=self.count(draft.description,
                                                                               session.config.model),
                        status=draft.status, author_kind="extract", author_id=None, author_name="memory",
                        turn=turn)
                    session.put_lore(created)
                elif changes:
                    if "description" in changes:
                        changes["token_count"] = self.count(changes["description"], session.config.model)
                    session.put_lore(await self.store.lore.update(entry.id, changes, author_kind="extract",
                                                                  author_id=None, author_name="memory", turn=turn))
                else:
                    continue
                changed += 1
            except Exception as exc:  # one bad entity never costs the chapter
                log.warning("campaign %s: lore entity %r from a fold skipped (%s)", session.campaign.id,
                            draft.name, type(exc).__name__)
        return changed

    async def close(self) -> None:
        """Cancel a running fold (nothing is changed by a cancelled fold)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
