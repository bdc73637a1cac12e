"""A runtime-like process for the throttle tests: `python throttle_client.py '<json>'`.

It uses `runtime.throttle` exactly as a runtime process would, against the same Redis as the
test, but on a `ManualClock` standing still at `options["now"]`, so every process computes its
slots from the same instant. Modes:

- `burst`: a sleep returns at once; one JSON line per request says which sleep it was given
  (its slot) or that it was refused;
- `hold`: sleeps never end; prints `ready` once every request has started or is waiting (a
  process that the test kills mid-wait).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from redis.asyncio import Redis

from runtime.throttle import Throttle, Throttled, ThrottleRate
from tests.runtime.limits.clock import ManualClock, until


async def one(throttle: Throttle, service: str, slept: list[float]) -> dict[str, Any]:
    asked = len(slept)
    try:
        await throttle.acquire(service)
        refused = None
    except Throttled as exc:
        refused = exc.code
    return {"slept": slept[asked] if len(slept) > asked else None, "refused": refused}


async def main(options: dict[str, Any]) -> None:
    redis = Redis.from_url(options["redis_url"])
    clock = ManualClock(options["now"])
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    hold = options["mode"] == "hold"
    throttle = Throttle(
        redis,
        ThrottleRate(**options["rate"]),
        prefix=options["prefix"],
        clock=clock,
        sleep=clock.sleep if hold else record,
    )
    await throttle.load()
    n = options["n"]
    if hold:
        tasks = [asyncio.create_task(throttle.acquire(options["service"])) for _ in range(n)]
        await until(lambda: sum(t.done() for t in tasks) + clock.sleeping == n, "all wait")
        print("ready", flush=True)
        await asyncio.sleep(3600)
    # One at a time: each `slept` entry then belongs to the request that asked for it.
    for _ in range(n):
        print(json.dumps(await one(throttle, options["service"], slept)), flush=True)
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
