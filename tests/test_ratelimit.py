"""Request pacing per provider, on a simulated clock (no real waiting)."""

from __future__ import annotations

import asyncio

from imagerelay.ratelimit import RateLimiter


class Clock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.now = max(self.now, self._target(seconds))

    def _target(self, seconds: float) -> float:
        return self.now + seconds


async def test_starts_are_spaced_by_the_rate() -> None:
    """At 60 requests a minute, five starts are one second apart."""
    clock = Clock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        await limiter.acquire()
        starts.append(clock.now)
    assert starts == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_no_limit_never_waits() -> None:
    """Without a configured rate, acquire returns at once."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]


async def test_penalty_holds_back_a_request_already_waiting() -> None:
    """A 429 seen while another task waits for its slot delays that task too."""
    clock = Clock()
    limiter = RateLimiter(60, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # slot at 0; the next is at 1
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)  # the waiter has taken slot 1 and is sleeping
    limiter.penalize(5.0)  # a 429 at t=0 asks for 5 s
    await waiter
    assert clock.now >= 5.0


async def test_penalty_without_a_rate_still_holds() -> None:
    """Even with no rate configured, a Retry-After pause applies to the next request."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.penalize(2.0)
    assert await limiter.acquire() == 2.0
