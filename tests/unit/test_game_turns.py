"""Turn collection and the manual clock: plain numbers, no sleeping."""

from __future__ import annotations

import asyncio

from bot.game.turns import ManualClock, MonotonicClock, TurnCollector


def test_window_opens_on_first_action_and_closes_at_its_deadline() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    assert (c.is_open, c.ready(0.0)) == (False, False)  # a tuple, so mypy keeps no narrowing of is_open
    c.add(100.0, author_id=1)
    assert c.is_open and c.deadline == 106.0
    assert not c.ready(105.999) and c.ready(106.0)


def test_each_action_extends_but_never_past_the_cap() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    c.add(100.0, 1)
    c.add(101.0, 2)
    assert c.deadline == 106.0  # 101 + 2 is earlier than the window: no change
    c.add(105.5, 2)
    assert c.deadline == 107.5
    t = 105.5
    while t < 125:
        t += 1.5
        c.add(t, 3)  # chatter keeps extending...
    assert c.deadline == 120.0  # ...but the hard cap is 20 s after the first action
    assert not c.ready(119.99) and c.ready(120.0)


def test_closes_early_when_every_party_member_acted_and_resets() -> None:
    c = TurnCollector(window=6, extend=2, max_window=20)
    c.add(100.0, 1)
    c.add(100.2, 99)  # someone without a character
    assert not c.ready(100.5, party_ids={1, 2})
    c.add(101.0, 2)
    assert c.ready(101.0, party_ids={1, 2})
    assert not TurnCollector(6, 2, 20).ready(0.0, party_ids={1})  # closed window: never ready
    c.reset()
    assert not c.is_open and not c.ready(10_000.0, {1, 2}) and c.actors == set()


def test_zero_window_closes_at_once_and_cap_is_at_least_the_window() -> None:
    c = TurnCollector(window=0, extend=2, max_window=20)
    c.add(5.0, 1)
    assert c.ready(5.0)
    wide = TurnCollector(window=30, extend=2, max_window=20)
    assert wide.max_window == 30
    wide.configure(window=4, extend=1, max_window=10)
    wide.add(0.0, 1)
    wide.add(3.5, 1)
    assert wide.deadline == 4.5


async def test_manual_clock_wakes_waiters_only_when_told() -> None:
    clock = ManualClock(10.0)
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait(event, 15.0))
    await asyncio.sleep(0)
    assert clock.next_deadline() == 15.0 and clock.due() == 0
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(0.1)
    assert clock.due() == 1  # due, not yet resumed
    assert await waiter is False  # the deadline, not the event
    assert clock.due() == 0 and clock.next_deadline() is None
    clock.set(3.0)
    assert clock.now() == 15.0  # never backwards
    other = asyncio.create_task(clock.wait(event, 100.0))
    await asyncio.sleep(0)
    event.set()
    assert await other is True
    assert await clock.wait(event, 0.0) is True  # already set: returns at once


async def test_monotonic_clock_waits_for_event_or_deadline() -> None:
    clock = MonotonicClock()
    event = asyncio.Event()
    assert await clock.wait(event, clock.now() + 0.01) is False
    assert await clock.wait(event, clock.now() - 1) is False  # past deadline: returns, still yields
    asyncio.get_running_loop().call_later(0.005, event.set)
    assert await clock.wait(event, clock.now() + 5) is True
