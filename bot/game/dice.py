"""Dice through the d20 library (Avrae's dice parser): ``1d20+5``, ``4d6kh3``, ``2d20kh1`` (advantage).

Limits against abuse: an expression of at most ``MAX_EXPRESSION_CHARS`` characters, at most
``MAX_ROLLS`` dice rolled in one expression (d20's ``RollContext``) and dice of at most
``MAX_SIDES`` sides; a total within ``MAX_TOTAL`` either way; the breakdown shown is cut to
``MAX_BREAKDOWN_CHARS`` characters.
"""

from __future__ import annotations

import re
import time

import d20

from bot.errors import UserInputError
from bot.models import RollRecord

MAX_EXPRESSION_CHARS = 100
MAX_ROLLS = 200
MAX_SIDES = 1000
MAX_BREAKDOWN_CHARS = 400
MAX_TOTAL = 10**12  # totals are stored as SQLite integers (64-bit); no table needs more

_SIDES = re.compile(r"d\s*(\d+)", re.I)
_ADVANTAGE = re.compile(r"^\s*(advantage|adv|disadvantage|dis)\b\s*", re.I)


class DiceError(UserInputError):
    """A dice expression that cannot be rolled; the message explains how to write one."""


def roll(expression: str) -> tuple[int, str, str]:
    """Roll ``expression`` and return ``(total, breakdown, normalised_expression)``; see
    ``roll_natural`` for the raises."""
    total, breakdown, expr, _natural = roll_natural(expression)
    return total, breakdown, expr


def roll_natural(expression: str) -> tuple[int, str, str, d20.CritType]:
    """Roll ``expression`` and return ``(total, breakdown, normalised_expression, crit)``, where
    ``crit`` is d20's reading of the leftmost d20: ``CritType.CRIT`` on a natural 20,
    ``CritType.FAIL`` on a natural 1, else ``NONE``.

    ``adv 1d20+3`` / ``dis 1d20+3`` are accepted as advantage/disadvantage on the d20.

    Raises:
        DiceError: empty, too long, too many dice, too many sides, a total out of range (or a
            division by zero), or not a dice expression.
    """
    expr = (expression or "").strip()
    if not expr:
        raise DiceError("Give a dice expression, like `1d20+5` or `4d6kh3`.")
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise DiceError(f"That dice expression is too long (max {MAX_EXPRESSION_CHARS} characters).")
    adv = d20.AdvType.NONE
    match = _ADVANTAGE.match(expr)
    if match:
        adv = d20.AdvType.ADV if match.group(1).lower().startswith("adv") else d20.AdvType.DIS
        expr = expr[match.end():] or "1d20"
    if any(int(s) > MAX_SIDES for s in _SIDES.findall(expr)):
        raise DiceError(f"Dice can have at most {MAX_SIDES} sides.")
    roller = d20.Roller(context=d20.RollContext(max_rolls=MAX_ROLLS))
    try:
        result = roller.roll(expr, advantage=adv)
        total = result.total  # d20 evaluates arithmetic lazily: division by zero surfaces here
    except d20.TooManyRolls:
        raise DiceError(f"That's too many dice (at most {MAX_ROLLS} in one roll).") from None
    except d20.RollError as exc:
        raise DiceError(f"I can't roll `{expr}`: write it like `1d20+5`, `4d6kh3` or `2d20kh1+3`. "
                        f"({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(total, int) or abs(total) > MAX_TOTAL:
        raise DiceError(f"That roll's total is out of range (at most {MAX_TOTAL:,} either way).")
    breakdown = str(result)
    if len(breakdown) > MAX_BREAKDOWN_CHARS:
        breakdown = f"{expr} = `{total}`"
    return total, breakdown, expr, result.crit


def make_roll(expression: str, *, reason: str = "", roller_id: int | None, roller_name: str,
              character_name: str | None, campaign_id: int | None, turn: int | None,
              by_dm: bool = False) -> RollRecord:
    """Roll and wrap the result as a ``RollRecord`` (not yet stored). Raises ``DiceError``."""
    total, breakdown, expr = roll(expression)
    return RollRecord(id=None, campaign_id=campaign_id, turn=turn, roller_id=roller_id,
                      roller_name=roller_name, character_name=character_name, expression=expr,
                      reason=reason.strip()[:200], total=total, breakdown=breakdown,
                      created_at=time.time(), by_dm=by_dm)
