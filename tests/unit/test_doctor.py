"""The doctor's offline judgements: Discord token shapes and heartbeat age."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.doctor import Check, Status, check_heartbeat, discord_token_check

GOOD = "MTA0NTgxNTEyNTkwNDQ3NDIyNA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


def test_a_bot_token_is_recognised_by_its_id_part_and_never_echoed() -> None:
    check = discord_token_check(GOOD)
    assert check.status == "ok" and "1045815125904474224" in check.detail
    assert "GaBcDe" not in check.line()


@pytest.mark.parametrize(("token", "words"), [
    (None, "not set"),
    ("", "not set"),
    ("Bot " + GOOD, "starts with 'Bot '"),
    ("abc.def", "has 2 dot-separated parts"),
    ("a..b", "has 3 dot-separated parts"),
    ("c2VjcmV0.GaBcDe.xyz", "not a bot id"),  # base64 of "secret"
    ("8Zx_Q2l5ZW50U2VjcmV0MTIz", "has 1 dot-separated parts"),  # an OAuth2 client secret
])
def test_wrong_tokens_fail_with_a_reason(token: str | None, words: str) -> None:
    check = discord_token_check(token)
    assert check.status == "FAIL" and words in check.detail
    if token:
        assert token not in check.detail


def test_heartbeat_age_against_the_limit(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    assert check_heartbeat(beat, 90, now=1000.0).status == "FAIL"
    beat.write_text("")
    os.utime(beat, (1000.0, 1000.0))
    assert check_heartbeat(beat, 90, now=1089.0) == Check("ok", "heartbeat", "last beat 89 s ago")
    stale = check_heartbeat(beat, 90, now=1091.0)
    assert stale.status == "FAIL" and "91 s ago" in stale.detail


def test_report_lines_align() -> None:
    statuses: tuple[Status, ...] = ("ok", "warn", "FAIL")
    tags = {Check(s, "x", "y").line()[:7] for s in statuses}
    assert tags == {"[ ok ] ", "[warn] ", "[FAIL] "}
