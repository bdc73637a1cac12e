"""A runtime-like process for the throttle tests: `python throttle_client.py '<json>'`.

It uses `runtime.throttle` exactly as a runtime process would, against the same Redis as the
test, and prints one JSON line per request (`burst` mode) or `ready` once its requests wait
(`hold` mode, for a process that the test kills mid-wait).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from redis.asyncio import Redis

from runtime.throttle import Throttle, Throttled, ThrottleRate


async def one(throttle: Throttle, service: str) -> dict[str, Any]:
    called_at = time.time()
    try:
        delay_ms = await throttle.acquire(service)
        outcome: Any = delay_ms
        refused = None
    except Throttled as exc:
        outcome, refused = None, exc.code  # apart: a delay of 1004 ms is not a refusal
    return {
        "called_at": called_at,
        "started_at": time.time(),
        "outcome": outcome,
        "refused": refused,
    }


async def main(options: dict[str, Any]) -> None:
    redis = Redis.from_url(options["redis_url"])
    throttle = Throttle(redis, ThrottleRate(**options["rate"]), prefix=options["prefix"])
    # Load the scripts before the start time, so both processes begin with one round trip.
    await throttle.load()
    await asyncio.sleep(max(0.0, options.get("start_at", 0) - time.time()))
    tasks = [asyncio.create_task(one(throttle, options["service"])) for _ in range(options["n"])]
    if options["mode"] == "hold":
        await asyncio.sleep(0.2)
        print("ready", flush=True)
        await asyncio.sleep(3600)
    for result in await asyncio.gather(*tasks):
        print(json.dumps(result), flush=True)
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
