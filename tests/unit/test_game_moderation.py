"""Moderation thresholds (``verdict``, pure) with exact cases per content rating, and the ``Moderator``
service against an in-process moderation port: no call when off, fail open, the probe."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.errors import UserInputError
from bot.game.moderation import (
    CATEGORIES,
    MODERATION_UNAVAILABLE_MESSAGE,
    OFF,
    PASSED,
    RATING_RULES,
    ModerationVerdict,
    Moderator,
    line_categories,
    verdict,
)
from bot.llm import errors as E
from bot.llm.types import ModerationResult, TextModeration
from bot.models import Campaign, ContentRating, GuildConfig


def scored(scores: dict[str, float] | None = None, flags: tuple[str, ...] = ()) -> ModerationResult:
    """One text: every category at 0.0001 but ``scores``; the endpoint's flags on ``flags``."""
    all_scores = {c: 0.0001 for c in CATEGORIES} | (scores or {})
    categories = {c: c in flags for c in all_scores}
    return ModerationResult((TextModeration(bool(flags), categories, all_scores),), model="omni-moderation-latest")


def blocked(*categories: str) -> ModerationVerdict:
    return ModerationVerdict(False, "blocked", tuple(sorted(categories)))


@pytest.mark.parametrize(("rating", "result", "expected"), [
    # family: 0.2 for everything, plain violence 0.5, every endpoint flag blocks
    ("family", scored(), PASSED),
    ("family", scored({"violence": 0.49}), PASSED),
    ("family", scored({"violence": 0.5}), blocked("violence")),
    ("family", scored({"violence/graphic": 0.2}), blocked("violence/graphic")),
    ("family", scored({"harassment": 0.19, "hate": 0.19, "self-harm": 0.19, "sexual": 0.19}), PASSED),
    ("family", scored({"harassment": 0.2}), blocked("harassment")),
    ("family", scored({"sexual": 0.2, "self-harm/intent": 0.21}), blocked("self-harm/intent", "sexual")),
    ("family", scored({"illicit": 0.2}), blocked("illicit")),
    ("family", scored({"violence": 0.3}, flags=("violence",)), blocked("violence")),
    # teen: 0.5, sexual strict at 0.2, violence 0.8, gore 0.5; flags on violence and gore do not block
    ("teen", scored({"sexual": 0.19}), PASSED),
    ("teen", scored({"sexual": 0.2}), blocked("sexual")),
    ("teen", scored({"sexual/minors": 0.2}), blocked("sexual/minors")),
    ("teen", scored({"harassment": 0.49, "hate": 0.49, "self-harm": 0.49, "illicit": 0.49}), PASSED),
    ("teen", scored({"hate/threatening": 0.5}), blocked("hate/threatening")),
    ("teen", scored({"violence": 0.79, "violence/graphic": 0.49}), PASSED),
    ("teen", scored({"violence": 0.8}), blocked("violence")),
    ("teen", scored({"violence/graphic": 0.5}), blocked("violence/graphic")),
    ("teen", scored({"violence": 0.6, "violence/graphic": 0.4}, flags=("violence", "violence/graphic")), PASSED),
    ("teen", scored({"hate": 0.1}, flags=("hate",)), blocked("hate")),
    # mature: scores ignored; only the endpoint's flags for minors, hate, self-harm instructions
    ("mature", scored({c: 0.99 for c in CATEGORIES}), PASSED),
    ("mature", scored({"violence": 0.99, "violence/graphic": 0.99, "sexual": 0.99},
                      flags=("violence", "violence/graphic", "sexual", "harassment", "self-harm/intent")), PASSED),
    ("mature", scored({"sexual/minors": 0.3}, flags=("sexual/minors",)), blocked("sexual/minors")),
    ("mature", scored(flags=("hate", "hate/threatening")), blocked("hate", "hate/threatening")),
    ("mature", scored(flags=("self-harm/instructions",)), blocked("self-harm/instructions")),
])
def test_verdict_per_rating(rating: ContentRating, result: ModerationResult, expected: ModerationVerdict) -> None:
    assert verdict(result, rating) == expected


def test_any_blocked_text_blocks_and_an_unknown_category_follows_the_rating() -> None:
    two = ModerationResult(scored().results + scored({"sexual": 0.25}).results)
    assert verdict(two, "teen") == blocked("sexual")
    future = ModerationResult((TextModeration(False, {"new/thing": False}, {"new/thing": 0.3}),))
    assert verdict(future, "family") == blocked("new/thing")
    assert verdict(future, "teen") == PASSED
    assert verdict(ModerationResult((TextModeration(True, {"new/thing": True}, {"new/thing": 0.3}),)),
                   "teen") == blocked("new/thing")
    assert verdict(ModerationResult((TextModeration(True, {"new/thing": True}, {"new/thing": 0.9}),)),
                   "mature") == PASSED
    assert verdict(scored({"violence": 0.5}), "unknown") == blocked("violence")  # type: ignore[arg-type]


def test_lines_make_their_categories_strict_at_any_rating() -> None:
    assert line_categories(["No torture, ever", "suicide"]) == {
        "violence/graphic", "self-harm", "self-harm/intent", "self-harm/instructions"}
    assert line_categories(["spiders", "clowns"]) == frozenset()
    gore = scored({"violence": 0.9, "violence/graphic": 0.25})
    assert verdict(gore, "mature") == PASSED
    assert verdict(gore, "mature", lines=["graphic gore"]) == blocked("violence/graphic")
    assert verdict(gore, "mature", lines=["spiders"]) == PASSED
    assert verdict(gore, "teen", lines=["violence"]) == blocked("violence", "violence/graphic")
    assert verdict(scored({"hate": 0.05}, flags=("harassment",)), "mature", lines=["bullying"]) == blocked(
        "harassment")


def test_ratings_only_loosen_from_family_to_teen_to_mature() -> None:
    family, teen, mature = RATING_RULES["family"], RATING_RULES["teen"], RATING_RULES["mature"]
    for category in CATEGORIES:
        f, t, m = family.threshold(category), teen.threshold(category), mature.threshold(category)
        assert f is not None and t is not None and f <= t and m is None, category
        assert family.flag_blocks(category) >= teen.flag_blocks(category) >= mature.flag_blocks(category), category


# --- the service ----------------------------------------------------------------------------------

CAMPAIGN = Campaign(id=5, guild_id=1, channel_id=10, title="T", setting="", tone="", status="active",
                    created_by=1, created_at=0.0)


def config(**changes: Any) -> GuildConfig:
    base = GuildConfig(guild_id=1, model="gpt-4o-mini", temperature=0.8, max_tokens=500, turn_mode="batch",
                       turn_window_seconds=0, allowed_channel_ids=(), ignored_prefixes=(),
                       guild_daily_token_budget=0, player_daily_token_budget=0, dm_style="",
                       content_rating="teen")
    return base.with_overrides(changes)


class Port:
    """A moderation port answering from ``answers`` (a result, or an exception to raise)."""

    def __init__(self, *answers: ModerationResult | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], str, float | None]] = []

    async def moderate(self, texts: list[str], *, model: str = "omni-moderation-latest",
                       deadline_s: float | None = None) -> ModerationResult:
        self.calls.append((texts, model, deadline_s))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Ledger:
    def __init__(self) -> None:
        self.rows: list[tuple[int | None, list[int], str, str]] = []

    async def record(self, campaign: Campaign | None, player_ids: list[int], purpose: str,
                     calls: list[ModerationResult]) -> None:
        self.rows += [(campaign.id if campaign else None, list(player_ids), purpose, c.model) for c in calls]


async def test_off_means_no_call_and_allowed() -> None:
    port = Port()
    moderator = Moderator(port, None)
    assert await moderator.check_input(config(), CAMPAIGN, "I carve out his eyes", author_id=7) == OFF
    assert await moderator.check_output(config(), CAMPAIGN, "Blood everywhere.") == OFF
    assert await moderator.check_output(config(moderation=True), CAMPAIGN, "   ") == OFF  # nothing to check
    assert port.calls == []


async def test_on_checks_with_the_rating_and_records_usage() -> None:
    port = Port(scored({"sexual": 0.3}), scored({"sexual": 0.3}))
    ledger = Ledger()
    moderator = Moderator(port, ledger, deadline_s=4.0)  # type: ignore[arg-type]
    assert await moderator.check_input(config(moderation=True), CAMPAIGN, "a", author_id=7) == blocked("sexual")
    mature = config(moderation=True, content_rating="mature")
    assert await moderator.check_output(mature, CAMPAIGN, "b", player_ids=[7, 8]) == PASSED
    assert port.calls == [(["a"], "omni-moderation-latest", 4.0), (["b"], "omni-moderation-latest", 4.0)]
    assert ledger.rows == [(5, [7], "moderation", "omni-moderation-latest"),
                           (5, [7, 8], "moderation", "omni-moderation-latest")]


@pytest.mark.parametrize("error", [E.ServiceUnavailable("HTTP 503", status=503), E.RequestTimedOut("slow"),
                                   E.RateLimited("HTTP 429", status=429), E.ModerationUnavailable("gone")])
async def test_endpoint_trouble_fails_open_for_input_and_output(error: E.LLMError,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    moderator = Moderator(Port(error, error), None)
    on = config(moderation=True)
    with caplog.at_level(logging.WARNING, logger="bot.game.moderation"):
        assert await moderator.check_input(on, CAMPAIGN, "secret words") == ModerationVerdict(
            True, "failed_open", detail=type(error).__name__)
        assert (await moderator.check_output(on, CAMPAIGN, "secret words")).status == "failed_open"
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "moderation of input failed open in campaign 5", "moderation of output failed open in campaign 5"]
    assert all("secret" not in r.getMessage() for r in caplog.records)
    no_port = Moderator(None, None)
    assert (await no_port.check_input(on, CAMPAIGN, "x")) == ModerationVerdict(True, "failed_open",
                                                                               detail="no moderation API")


async def test_probe_refuses_with_a_sentence() -> None:
    with pytest.raises(E.ModerationUnavailable) as info:
        await Moderator(None, None).probe()
    assert info.value.player_message == MODERATION_UNAVAILABLE_MESSAGE
    with pytest.raises(E.ModerationUnavailable) as info:
        await Moderator(Port(E.ModerationUnavailable("HTTP 404", status=404)), None).probe()
    assert info.value.player_message == MODERATION_UNAVAILABLE_MESSAGE and info.value.status == 404
    with pytest.raises(UserInputError) as refused:
        await Moderator(Port(E.ServiceUnavailable("HTTP 503", status=503)), None).probe()
    assert refused.value.player_message == (
        "Moderation stays off: checking the endpoint's moderation API failed (The DM's connection to the model "
        "is down. Try again in a little while.) Try again in a moment.")
    port = Port(scored())
    await Moderator(port, None).probe()
    assert port.calls == [(["The party enters the tavern."], "omni-moderation-latest", 15.0)]
