"""Moderation (the ``moderation`` server option): player input and the DM's output checked with the
endpoint's moderation API, with thresholds that follow the server's content rating.

Two parts:

* ``verdict(result, rating, lines)``: pure; turns the endpoint's per-category scores (0..1) and its
  own per-category flags into allowed / blocked for a rating. The numbers are in ``RATING_RULES``.
* ``Moderator``: the service. ``check_input`` (wired into ``bot.game.intake``) and ``check_output``
  (for the turn pipeline) make one moderation call per text through the model client (its one retry
  layer, limits and typed errors), record a usage row with purpose ``moderation`` and return a
  ``ModerationVerdict``. With the option off they make no call and allow. ``probe`` is the one tiny
  call ``/config set moderation on`` makes to prove the endpoint has a moderation API.

Failures FAIL OPEN, for input and output alike, with a WARNING log line (never the text): a flaky or
vanished moderation endpoint must never stop the game, and the content rating's rules stay in the
system prompt either way. Only ``probe`` raises (an admin turning moderation on must hear that it
cannot work).

Nothing a player writes reaches these decisions: the option is read from the server's config, which
only an admin's ``/config set`` changes; the text is only ever sent to the endpoint to be scored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.errors import UserInputError
from bot.game.ledger import UsageLedger
from bot.game.ports import ModerationPort
from bot.llm import errors as E
from bot.llm.types import ModerationResult
from bot.models import Campaign, ContentRating, GuildConfig

log = logging.getLogger(__name__)

MODERATION_MODEL = "omni-moderation-latest"
MODERATION_DEADLINE_SECONDS = 15.0  # one check's total time (retries included) before it fails open
PROBE_TEXT = "The party enters the tavern."  # the tiny harmless text ``probe`` sends

MODERATED_INPUT_MESSAGE = ("The DM set that message aside: it goes past what this server's content settings "
                           "allow, so it stays out of the story (it was kept for the server's admins). "
                           "Try putting it another way.")
MODERATED_OUTPUT_NOTICE = ("The DM started a scene that goes past this server's content settings and threw it "
                           "away. Your actions are saved: the DM will answer them with the next action, or "
                           "try /retry.")
MODERATION_UNAVAILABLE_MESSAGE = ("Moderation stays off: the bot's model endpoint has no moderation API (OpenAI's "
                                  "has one, omni-moderation-latest; Ollama and llama.cpp don't). Point "
                                  "OPENAI_BASE_URL at an endpoint with one to use it.")

# OpenAI's moderation categories (omni-moderation-latest).
SEXUAL = ("sexual",)
MINORS = ("sexual/minors",)
HARASSMENT = ("harassment", "harassment/threatening")
HATE = ("hate", "hate/threatening")
ILLICIT = ("illicit", "illicit/violent")
SELF_HARM = ("self-harm", "self-harm/intent", "self-harm/instructions")
VIOLENCE = ("violence",)
GORE = ("violence/graphic",)
CATEGORIES = SEXUAL + MINORS + HARASSMENT + HATE + ILLICIT + SELF_HARM + VIOLENCE + GORE

STRICT = 0.2  # the strict threshold: family ratings, teen sexual content, and a table's lines


@dataclass(frozen=True, slots=True)
class RatingRule:
    """How one content rating reads a moderation result.

    Attributes:
        thresholds: category -> the score (0..1) at or above which it blocks.
        other_threshold: the threshold for a category not in ``thresholds`` (one the endpoint adds
            later); None: such scores never block.
        blocking_flags: categories whose own endpoint flag blocks; None: every category's flag does.
        unblocked_flags: with ``blocking_flags`` None, the categories whose flag does NOT block (their
            score threshold decides alone).
    """

    thresholds: Mapping[str, float]
    other_threshold: float | None
    blocking_flags: frozenset[str] | None
    unblocked_flags: frozenset[str] = frozenset()

    def threshold(self, category: str) -> float | None:
        """The blocking score of ``category``, or None when its score never blocks."""
        return self.thresholds.get(category, self.other_threshold)

    def flag_blocks(self, category: str) -> bool:
        """Does the endpoint's own flag on ``category`` block?"""
        if self.blocking_flags is None:
            return category not in self.unblocked_flags
        return category in self.blocking_flags


def _all(categories: Iterable[str], value: float) -> dict[str, float]:
    return dict.fromkeys(categories, value)


RATING_RULES: dict[ContentRating, RatingRule] = {
    # family: children may be at the table. Every category blocks at a score of 0.2 (a fifth of the
    # way to certain: the classifier's "possibly"), and any category the endpoint itself flags
    # blocks. One exception: plain `violence` blocks at 0.5, because fighting monsters is the game
    # and the classifier gives an ordinary sword blow real violence scores; a fight told gorily is
    # caught by `violence/graphic` at 0.2.
    "family": RatingRule({**_all(CATEGORIES, STRICT), "violence": 0.5}, STRICT, None),
    # teen: 0.5 (the classifier's "more likely than not") for everything, but sexual content stays
    # strict at 0.2 (sexual/minors too). Fights may be tense: plain `violence` blocks only at 0.8 and
    # gore at 0.5, and the endpoint's own flags on those two do not block (its thresholds are made
    # for social media, not for a sword-and-sorcery story); every other flag does.
    "teen": RatingRule({**_all(CATEGORIES, 0.5), "sexual": STRICT, "sexual/minors": STRICT, "violence": 0.8},
                       0.5, None, frozenset(VIOLENCE + GORE)),
    # mature: the story may be violent, sexual between adults, cruel. Scores are ignored; only the
    # endpoint's own flags for what no table may carry block: sexual content with minors, hate, and
    # self-harm instructions. Violence of any kind is allowed.
    "mature": RatingRule({}, None, frozenset(MINORS + HATE + ("self-harm/instructions",))),
}

# A table's lines (``/safety lines``) that name one of these topics make its categories strict (score
# 0.2, and the endpoint's flag blocks) whatever the rating. A line naming no category ("spiders") has
# no moderation meaning: it works through the system prompt only. Matched case-insensitively as
# substrings of the line.
LINE_TOPICS: dict[str, tuple[str, ...]] = {
    "sex": SEXUAL, "nudity": SEXUAL, "erotic": SEXUAL,
    "gore": GORE, "torture": GORE, "mutilation": GORE, "dismember": GORE, "graphic violence": GORE,
    "violence": VIOLENCE + GORE,
    "self-harm": SELF_HARM, "self harm": SELF_HARM, "suicide": SELF_HARM,
    "racism": HATE, "bigotry": HATE, "hate": HATE, "slur": HATE,
    "harassment": HARASSMENT, "bullying": HARASSMENT,
    "drugs": ILLICIT,
}

VerdictStatus = Literal["off", "passed", "blocked", "failed_open"]


@dataclass(frozen=True, slots=True)
class ModerationVerdict:
    """What moderation decided about a text.

    Attributes:
        allowed: True when the text may go on (to the DM, or to the table).
        status: "off" (option off: no call), "passed", "blocked", or "failed_open" (the check failed
            and the text was allowed; see the module docstring).
        categories: the categories that blocked it, sorted (empty unless blocked).
        detail: for logs: why a check failed open (an error class name); never the text.
    """

    allowed: bool
    status: VerdictStatus
    categories: tuple[str, ...] = field(default=())
    detail: str = ""


OFF = ModerationVerdict(True, "off")
PASSED = ModerationVerdict(True, "passed")


def line_categories(lines: Iterable[str]) -> frozenset[str]:
    """The moderation categories a table's lines make strict (see ``LINE_TOPICS``)."""
    found: set[str] = set()
    for line in lines:
        lowered = line.lower()
        for topic, categories in LINE_TOPICS.items():
            if topic in lowered:
                found.update(categories)
    return frozenset(found)


def verdict(result: ModerationResult, rating: ContentRating, lines: Sequence[str] = ()) -> ModerationVerdict:
    """Allowed or blocked, for the server's ``rating`` and the table's ``lines`` (pure).

    A text is blocked when, for any category, its score is at or above the rating's threshold
    (``RATING_RULES``; 0.2 for a category a line names) or the endpoint flagged the category and that
    flag blocks at this rating (always for a category a line names). ``result`` may hold several
    texts: any blocked text blocks. An unknown rating reads as "family" (the strictest).
    """
    rule = RATING_RULES.get(rating, RATING_RULES["family"])
    strict = line_categories(lines)
    blocked: set[str] = set()
    for text in result.results:
        for category in set(text.scores) | set(text.categories):
            threshold = rule.threshold(category)
            if category in strict:
                threshold = STRICT if threshold is None else min(threshold, STRICT)
            score = text.scores.get(category)
            over = threshold is not None and score is not None and score >= threshold
            flag = bool(text.categories.get(category)) and (category in strict or rule.flag_blocks(category))
            if over or flag:
                blocked.add(category)
    if blocked:
        return ModerationVerdict(False, "blocked", tuple(sorted(blocked)))
    return PASSED


class Moderator:
    """The moderation service.

    Args:
        port: the model client's moderation API (``LLMClient``); None when the model client has none
            (then checks fail open and ``probe`` refuses).
        ledger: where each moderation call's usage row goes (purpose ``moderation``).
        model: the moderation model asked for.
        deadline_s: one check's total time limit, seconds (retries included).
    """

    def __init__(self, port: ModerationPort | None, ledger: UsageLedger | None, *, model: str = MODERATION_MODEL,
                 deadline_s: float = MODERATION_DEADLINE_SECONDS) -> None:
        self.port = port
        self.ledger = ledger
        self.model = model
        self.deadline_s = deadline_s

    async def probe(self) -> None:
        """One tiny moderation call (a harmless sentence) proving the endpoint has a moderation API.

        Raises:
            ModerationUnavailable: it has none (player message: ``MODERATION_UNAVAILABLE_MESSAGE``).
            UserInputError: the check itself failed (endpoint down, key refused, ...), with a sentence.
        """
        if self.port is None:
            raise E.ModerationUnavailable("the model client has no moderation API",
                                          player_message=MODERATION_UNAVAILABLE_MESSAGE)
        try:
            await self.port.moderate([PROBE_TEXT], model=self.model, deadline_s=self.deadline_s)
        except E.ModerationUnavailable as exc:
            raise E.ModerationUnavailable(str(exc), status=exc.status, request_id=exc.request_id,
                                          attempts=exc.attempts,
                                          player_message=MODERATION_UNAVAILABLE_MESSAGE) from None
        except E.LLMError as exc:
            raise UserInputError(f"Moderation stays off: checking the endpoint's moderation API failed "
                                 f"({exc.player_message}) Try again in a moment.") from None

    async def check_input(self, config: GuildConfig, campaign: Campaign, text: str, *,
                          author_id: int | None = None, lines: Sequence[str] = ()) -> ModerationVerdict:
        """Check a player's message before it is stored as an action.

        Returns ``OFF`` without a call when ``config.moderation`` is off (or the text is blank); else
        the ``verdict`` for ``config.content_rating`` and ``lines``. Never raises for endpoint trouble:
        fails open (``status="failed_open"``, allowed) with a log line. The usage row is the author's.
        """
        return await self._check("input", config, campaign, text, [author_id] if author_id is not None else [],
                                 lines)

    async def check_output(self, config: GuildConfig, campaign: Campaign, text: str, *,
                           player_ids: Sequence[int] = (), lines: Sequence[str] = ()) -> ModerationVerdict:
        """Check the DM's narration before it goes to the table.

        Returns ``OFF`` without a call when ``config.moderation`` is off (or the text is blank); else
        the ``verdict`` for ``config.content_rating`` and ``lines``. Never raises for endpoint trouble:
        fails open (allowed) with a log line, so a flaky moderation endpoint never stops the game.

        The turn pipeline's contract: on ``not verdict.allowed`` it regenerates the reply once (not
        quoting the flagged text to the model) and checks that one too; if it is blocked again, it
        posts ``MODERATED_OUTPUT_NOTICE`` instead (a notice: the flagged narration is neither stored
        nor shown, the actions stay pending as after a model error). The usage row is split across
        ``player_ids`` (the players whose actions the turn answers).
        """
        return await self._check("output", config, campaign, text, list(player_ids), lines)

    async def _check(self, what: str, config: GuildConfig, campaign: Campaign, text: str,
                     player_ids: list[int], lines: Sequence[str]) -> ModerationVerdict:
        if not config.moderation or not text.strip():
            return OFF
        if self.port is None:
            log.warning("moderation of %s failed open in campaign %s: the model client has no moderation API",
                        what, campaign.id)
            return ModerationVerdict(True, "failed_open", detail="no moderation API")
        try:
            result = await self.port.moderate([text], model=self.model, deadline_s=self.deadline_s)
        except E.LLMError as exc:
            log.warning("moderation of %s failed open in campaign %s: %s status=%s request_id=%s", what,
                        campaign.id, type(exc).__name__, exc.status, exc.request_id)
            return ModerationVerdict(True, "failed_open", detail=type(exc).__name__)
        if self.ledger is not None:
            await self.ledger.record(campaign, player_ids, "moderation", [result])
        decided = verdict(result, config.content_rating, lines)
        if not decided.allowed:
            log.info("moderation blocked %s in campaign %s (rating %s): %s", what, campaign.id,
                     config.content_rating, ", ".join(decided.categories))
        return decided
