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
        self._hold_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited."""
        now = self._clock()
        if self.interval <= 0 and self._next <= now and self._hold_until <= now:
            return 0.0
        waited = 0.0
        while True:
            async with self._lock:
                now = self._clock()
                start = max(now, self._next, self._hold_until)
                self._next = start + self.interval
                hold_seen = self._hold_until
            if start > now:
                await self._sleep(start - now)
                waited += start - now
            if self._hold_until <= hold_seen:
                return waited
            # A 429 arrived while we waited: queue again behind it, so the tasks held back do
            # not all start at once when the pause ends.

    def penalize(self, seconds: float) -> None:
        """No request starts for `seconds` from now, including those already waiting."""
        self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))
