"""Time that moves only when a test moves it, for the throttle (`Throttle(clock=, sleep=)`).

The throttle asks Redis for the time and `asyncio.sleep`s until a slot; on a busy machine both
drift by tens of milliseconds, so tests that measured them asserted windows that sometimes
failed. With a `ManualClock` the throttle computes its slots from `clock.now`, and a request
that must wait sleeps until the test calls `advance`: what a test asserts is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []  # every sleep asked for, in seconds, in order
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced `seconds` past now."""
        self.slept.append(seconds)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, waiter in self._sleepers:
            if deadline <= self.now + 1e-9 and not waiter.done():
                waiter.set_result(None)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for `condition` (requests reach Redis and come back: real round trips). The timeout
    only turns a hang into a failure that says what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)
