"""Small typed assertions for tests."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None) -> T:
    """``value``, asserting it is not None (a lookup that must have found something)."""
    assert value is not None, "expected a value, got None"
    return value
