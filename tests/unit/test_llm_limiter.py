"""The client-side limiter: concurrency cap and sliding-window requests/tokens per minute, with a fake
clock and a fake sleep that advances it (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from bot.llm.limiter import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_delay_for_sliding_window() -> None:
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=1000)
    assert limiter.delay_for(100, 0.0) == 0
    limiter._events.extend([(0.0, 100), (10.0, 100)])
    assert limiter.delay_for(100, 20.0) == pytest.approx(40.0)  # third request waits until t=60
    assert limiter.delay_for(100, 61.0) == 0  # the first fell out of the window
    limiter._events.clear()
    limiter._events.append((61.0, 900))
    assert limiter.delay_for(200, 62.0) == pytest.approx(59.0)  # tokens per minute


async def test_requests_per_minute_waits_on_fake_clock() -> None:
    t = FakeTime()
    limiter = RateLimiter(requests_per_minute=3, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(7):
        async with limiter.slot():
            starts.append(t.now)
    assert starts == [0, 0, 0, 60, 60, 60, 120]
    assert limiter.waited_seconds == pytest.approx(120)


async def test_tokens_per_minute_waits_and_oversized_runs_alone() -> None:
    t = FakeTime()
    limiter = RateLimiter(tokens_per_minute=1000, clock=t.clock, sleep=t.sleep)
    async with limiter.slot(600):
        pass
    t.now = 5.0
    async with limiter.slot(300):
        pass
    assert t.now == 5.0  # 900 <= 1000: no wait
    async with limiter.slot(400):
        pass
    assert t.now == pytest.approx(60.0)  # waits until the 600 leaves the window
    t.now = 500.0
    async with limiter.slot(5000):  # larger than the whole budget: runs once the window is empty
        pass
    assert t.now == 500.0


async def test_unlimited_never_sleeps() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        async with limiter.slot(10_000):
            pass
    assert t.sleeps == []


async def test_concurrency_cap() -> None:
    limiter = RateLimiter(max_concurrency=2)
    running = peak = 0

    async def job() -> None:
        nonlocal running, peak
        async with limiter.slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(job() for _ in range(6)))
    assert peak == 2
