"""Per-provider request pacing: at most N requests a minute, and slower after a 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces request starts at least `60 / per_minute` seconds apart, across every task.

    `penalize(seconds)` (on a 429) pushes the next start back for everyone using this provider,
    so one throttled request slows the whole batch down instead of each task hammering on.
    """

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        if self.interval <= 0 and self._next <= self._clock():
            return 0.0
        async with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            await self._sleep(wait)
        return max(0.0, wait)

    def penalize(self, seconds: float) -> None:
        """No request starts for `seconds` from now."""
        self._next = max(self._next, self._clock() + max(0.0, seconds))
