"""Client-side limits so a busy bot queues politely instead of provoking 429 storms.

``RateLimiter`` caps requests in flight (a semaphore) and, over a sliding 60-second window, requests
per minute and tokens per minute (0 = no limit). Callers wait; nothing fails. Time is injectable
(``clock``/``sleep``) so tests run without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

WINDOW_SECONDS = 60.0


class RateLimiter:
    """Args:
        max_concurrency: requests in flight at once (>= 1).
        requests_per_minute: 0 = unlimited.
        tokens_per_minute: 0 = unlimited; a request estimated above the limit still runs alone.
        clock: monotonic seconds; sleep: awaitable sleep (seconds).
    """

    def __init__(self, max_concurrency: int = 8, requests_per_minute: int = 0, tokens_per_minute: int = 0,
                 *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self.clock = clock
        self.sleep = sleep
        self._events: deque[tuple[float, int]] = deque()  # (time, tokens) of admitted requests
        self._admit = asyncio.Lock()
        self.waited_seconds = 0.0

    def _prune(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= WINDOW_SECONDS:
            self._events.popleft()

    def delay_for(self, tokens: int, now: float) -> float:
        """Seconds to wait before a request of ``tokens`` may start (0 when it may start now)."""
        self._prune(now)
        delay = 0.0
        if self.rpm and len(self._events) >= self.rpm:
            delay = max(delay, self._events[len(self._events) - self.rpm][0] + WINDOW_SECONDS - now)
        if self.tpm and self._events:
            used = sum(t for _, t in self._events)
            if used + tokens > self.tpm:
                freed = 0
                for at, t in self._events:
                    freed += t
                    if used - freed + tokens <= self.tpm:
                        delay = max(delay, at + WINDOW_SECONDS - now)
                        break
                else:
                    delay = max(delay, self._events[-1][0] + WINDOW_SECONDS - now)
        return max(0.0, delay)

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        """Hold a place for one request estimated at ``tokens`` (prompt + max completion)."""
        async with self._admit:
            while True:
                delay = self.delay_for(tokens, self.clock())
                if delay <= 0:
                    break
                self.waited_seconds += delay
                await self.sleep(delay)
            self._events.append((self.clock(), tokens))
        async with self.semaphore:
            yield
