"""Sandbox throttling through a real Redis, from real separate processes.

Time is a `ManualClock` (tests/runtime/limits/clock.py): the throttle computes its slots from
the clock's `now` and a waiting request sleeps until the test advances it, so each assertion
is exact (which slot a request got, how long it reports it was held) however busy the machine.
Rates here are faster than the sandbox's 10 per 10 s; the logic is the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from runtime.config import ConfigError, parse_config
from runtime.throttle import (
    THROTTLED_MESSAGE,
    BatchTooLarge,
    Throttle,
    Throttled,
    ThrottleRate,
    header,
)
from tests.runtime.limits.clock import ManualClock, until

pytestmark = [pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[3]
CLIENT = Path(__file__).with_name("throttle_client.py")
T = TypeVar("T")
NOW = 1_800_000_000.0


def run(redis_url: str, body: Callable[[Redis], Awaitable[T]]) -> T:
    """Run one async test body with its own Redis client."""

    async def main() -> T:
        client = Redis.from_url(redis_url)
        try:
            return await body(client)
        finally:
            await client.aclose()

    # A thread of its own: the browser tests' Playwright keeps an event loop running in this
    # one for the rest of the session, and asyncio.run() refuses to nest.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def start_client(options: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CLIENT), json.dumps(options)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def manual(
    redis: Redis, prefix: str, rate: ThrottleRate | None = None
) -> tuple[Throttle, ManualClock]:
    clock = ManualClock(NOW)
    return Throttle(redis, rate, prefix=prefix, clock=clock, sleep=clock.sleep), clock


async def outcome(call: Awaitable[int]) -> int | Throttled:
    """The delay a request reports, or the refusal it got."""
    try:
        return await call
    except Throttled as exc:
        return exc


def finished(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    return [task.result() for task in tasks if task.done()]


async def cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_a_burst_waits_for_its_slots_and_reports_how_long_it_was_held(
    redis_url: str, throttle_prefix: str
) -> None:
    async def body(redis: Redis) -> None:
        # A slot every 200 ms, a burst of 5.
        throttle, clock = manual(redis, throttle_prefix, ThrottleRate(rate=5, per_seconds=1.0))
        tasks = [asyncio.create_task(throttle.acquire("ws~shop$dev")) for _ in range(10)]
        await until(lambda: len(finished(tasks)) == 5 and clock.sleeping == 5, "5 start, 5 wait")
        assert finished(tasks) == [0] * 5
        assert sorted(clock.slept) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])

        for step in range(1, 6):
            clock.advance(0.2)  # one more slot comes: exactly one more request starts
            await until(lambda s=step: len(finished(tasks)) == 5 + s, f"start {5 + step}")
            assert clock.sleeping == 5 - step
        assert sorted(finished(tasks)) == [0] * 5 + [200, 400, 600, 800, 1000]

    run(redis_url, body)


def test_a_burst_from_two_processes_draws_on_one_bucket(
    redis_url: str, throttle_prefix: str
) -> None:
    options = {
        "redis_url": redis_url,
        "prefix": throttle_prefix,
        "service": "ws~shop$dev",
        "rate": {"rate": 5, "per_seconds": 1.0, "max_waiting": 25},  # 200 ms apart, burst 5
        "n": 10,
        "mode": "burst",
        "now": NOW,
    }
    clients = [start_client(options), start_client(options)]
    results = []
    for client in clients:
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]

    assert len(results) == 20
    assert all(r["refused"] is None for r in results), "nobody is refused under 25 waiting"
    # One bucket for both processes: the burst once, then every slot given exactly once.
    # (A bucket per process would have let 10 requests through without waiting.)
    slots = sorted(round(r["slept"] * 1000) for r in results if r["slept"] is not None)
    assert len(results) - len(slots) == 5
    assert slots == [200 * k for k in range(1, 16)]


def test_the_26th_waiting_request_is_refused_at_once_with_1004(
    redis_url: str, throttle_prefix: str
) -> None:
    async def body(redis: Redis) -> None:
        # Burst 2, then 25 may wait: the 28th request is refused.
        rate = ThrottleRate(rate=2, per_seconds=1.0, max_waiting=25)
        throttle, clock = manual(redis, throttle_prefix, rate)
        tasks = [asyncio.create_task(outcome(throttle.acquire("ws~shop$dev"))) for _ in range(28)]
        await until(lambda: len(finished(tasks)) == 3 and clock.sleeping == 25, "3 answered")
        done = finished(tasks)
        assert done.count(0) == 2
        (refused,) = [o for o in done if isinstance(o, Throttled)]
        assert len(clock.slept) == 25, "the refused request did not wait: refused at once"
        assert refused.answer("local:abc") == {
            "errors": [{"message": THROTTLED_MESSAGE, "code": 1004, "requestId": "local:abc"}]
        }
        assert THROTTLED_MESSAGE == "There are too many concurrent queries for this service."
        await cancel([t for t in tasks if not t.done()])

        # The cancelled requests (clients gone) left the queue: 25 may wait again.
        again = [asyncio.create_task(outcome(throttle.acquire("ws~shop$dev"))) for _ in range(25)]
        await until(lambda: clock.sleeping == 25 or any(t.done() for t in again), "25 wait")
        assert clock.sleeping == 25 and not finished(again)
        await cancel(again)

    run(redis_url, body)


def test_another_service_is_not_slowed(redis_url: str, throttle_prefix: str) -> None:
    async def body(redis: Redis) -> None:
        rate = ThrottleRate(rate=2, per_seconds=1.0, max_waiting=5)
        throttle, clock = manual(redis, throttle_prefix, rate)
        busy = [asyncio.create_task(outcome(throttle.acquire("ws~busy$dev"))) for _ in range(8)]
        await until(lambda: len(finished(busy)) == 3 and clock.sleeping == 5, "busy is full")
        assert isinstance(await outcome(throttle.acquire("ws~busy$dev")), Throttled)

        slept = len(clock.slept)
        assert [await throttle.acquire("ws~quiet$dev") for _ in range(2)] == [0, 0]
        assert len(clock.slept) == slept, "the quiet service never waited"
        assert header(0) == (b"throttled-by", b"0ms")
        await cancel(busy)

    run(redis_url, body)


def test_a_waiter_whose_process_dies_does_not_hold_its_place(
    redis_url: str, throttle_prefix: str
) -> None:
    rate = {"rate": 1, "per_seconds": 1.0, "max_waiting": 3}  # slots 1 s apart, burst 1
    holder = start_client(
        {
            "redis_url": redis_url,
            "prefix": throttle_prefix,
            "service": "ws~shop$dev",
            "rate": rate,
            "n": 4,  # one starts, three wait for slots at +1 s, +2 s and +3 s
            "mode": "hold",
            "now": NOW,
        }
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
    finally:
        holder.kill()
        holder.wait()

    async def body(redis: Redis) -> None:
        throttle, clock = manual(redis, throttle_prefix, ThrottleRate(**rate))
        refused = await outcome(throttle.acquire("ws~shop$dev"))
        assert isinstance(refused, Throttled), "the dead process's waiters still count"
        assert clock.slept == []
        # Once their slots have passed they no longer count: 3 requests may wait again.
        clock.advance(3.3)
        again = [asyncio.create_task(outcome(throttle.acquire("ws~shop$dev"))) for _ in range(3)]
        await until(lambda: clock.sleeping == 3 or any(t.done() for t in again), "3 wait")
        assert clock.sleeping == 3 and not finished(again)
        await cancel(again)

    run(redis_url, body)


def test_a_batch_takes_one_slot_per_operation(redis_url: str, throttle_prefix: str) -> None:
    async def body(redis: Redis) -> None:
        throttle, clock = manual(redis, throttle_prefix)  # the sandbox's 10 per 10 s
        assert await throttle.acquire("ws~a$dev", operations=10) == 0
        # The batch spent the whole burst: the next request waits for the next slot.
        waiting = asyncio.create_task(throttle.acquire("ws~a$dev"))
        await until(lambda: clock.sleeping == 1, "the next request waits")
        assert clock.slept == [pytest.approx(1.0)]
        clock.advance(1.0)
        assert await waiting == 1000

        # A batch partly over the burst starts when its last operation's slot comes.
        assert await throttle.acquire("ws~b$dev", operations=3) == 0
        batch = asyncio.create_task(throttle.acquire("ws~b$dev", operations=9))
        await until(lambda: clock.sleeping == 1, "the batch waits")
        assert clock.slept[-1] == pytest.approx(2.0)
        clock.advance(2.0)
        assert await batch == 2000

    run(redis_url, body)


def test_a_batch_counts_its_waiting_operations_against_the_queue(
    redis_url: str, throttle_prefix: str
) -> None:
    async def body(redis: Redis) -> None:
        rate = ThrottleRate(rate=10, per_seconds=10.0, max_waiting=2)
        throttle, clock = manual(redis, throttle_prefix, rate)
        assert await throttle.acquire("ws~a$dev", operations=10) == 0  # the burst is spent
        refused = await outcome(throttle.acquire("ws~a$dev", operations=3))
        assert isinstance(refused, Throttled), "3 operations would wait where 2 may"
        assert refused.message == THROTTLED_MESSAGE
        # Refused, it reserved nothing: 2 operations may still wait, for the next two slots.
        fits = asyncio.create_task(throttle.acquire("ws~a$dev", operations=2))
        await until(lambda: clock.sleeping == 1, "2 operations wait")
        assert clock.slept == [pytest.approx(2.0)]
        await cancel([fits])

        two_wait = asyncio.create_task(throttle.acquire("ws~b$dev", operations=12))
        await until(lambda: clock.sleeping == 1, "the batch waits")
        assert isinstance(await outcome(throttle.acquire("ws~b$dev")), Throttled)
        assert len(clock.slept) == 2
        await cancel([two_wait])
        # A batch that gives up returns its slots and its places in the queue.
        assert await throttle.acquire("ws~b$dev", operations=10) == 0

    run(redis_url, body)


def test_a_batch_that_could_never_start_is_refused_at_once_with_the_numbers(
    redis_url: str, throttle_prefix: str
) -> None:
    async def body(redis: Redis) -> None:
        throttle, clock = manual(redis, throttle_prefix)  # burst 10, 25 waiting
        with pytest.raises(BatchTooLarge) as raised:
            await throttle.acquire("ws~a$dev", operations=500)
        assert raised.value.code == 1004
        assert raised.value.message == (
            "This request holds 500 operations, and each counts as a request: a service here "
            "runs 10 requests per 10 seconds, at most 35 at once (10 straight away and 25 "
            "waiting). Send at most 35 operations per request."
        )
        assert isinstance(raised.value, Throttled)  # answered like the throttle's refusals
        assert clock.slept == []
        assert await throttle.acquire("ws~a$dev", operations=10) == 0  # nothing was reserved

    run(redis_url, body)


def test_each_call_can_use_its_own_rate(redis_url: str, throttle_prefix: str) -> None:
    async def body(redis: Redis) -> None:
        throttle, _ = manual(redis, throttle_prefix)  # the sandbox's 10 per 10 s
        fast = ThrottleRate(rate=20, per_seconds=1.0, burst=1, max_waiting=0)
        assert await throttle.acquire("ws~a$dev", fast) == 0
        with pytest.raises(Throttled):
            await throttle.acquire("ws~a$dev", fast)  # over the rate with no queue at all
        assert [await throttle.acquire("ws~b$dev") for _ in range(10)] == [0] * 10

    run(redis_url, body)


def test_without_a_clock_the_throttle_uses_redis_time(redis_url: str, throttle_prefix: str) -> None:
    async def body(redis: Redis) -> None:
        throttle = Throttle(redis, prefix=throttle_prefix)  # production: Redis's clock
        await throttle.load()
        assert [await throttle.acquire("ws~a$dev") for _ in range(10)] == [0] * 10
        with pytest.raises(Throttled):
            await throttle.acquire("ws~a$dev", ThrottleRate(max_waiting=0))

    run(redis_url, body)


def test_rates_are_validated() -> None:
    assert ThrottleRate().interval_ms == 1000
    assert ThrottleRate().burst_size == 10
    with pytest.raises(ValueError):
        ThrottleRate(rate=0)
    with pytest.raises(ValueError):
        ThrottleRate(per_seconds=0)


def test_a_sandbox_config_gives_prismas_numbers() -> None:
    config = parse_config(
        {
            "databases": {"default": {"connector": "postgres"}},
            "redisUrl": "redis://r",
            "sandbox": {},
        },
        {},
    )
    sandbox = config.servers[0].sandbox
    assert sandbox is not None
    rate = ThrottleRate.from_sandbox(sandbox)
    assert (rate.rate, rate.per_seconds, rate.burst_size, rate.max_waiting) == (10, 10.0, 10, 25)
    assert rate.interval_ms == 1000


def test_a_sandbox_limits_root_fields_to_25_unless_configured() -> None:
    base = {"databases": {"default": {"connector": "postgres"}}, "redisUrl": "redis://r"}
    sandbox = parse_config({**base, "sandbox": {}}, {}).servers[0].sandbox
    assert sandbox is not None and sandbox.root_fields == 25
    sandbox = parse_config({**base, "sandbox": {"rootFields": 3}}, {}).servers[0].sandbox
    assert sandbox is not None and sandbox.root_fields == 3
    with pytest.raises(ConfigError, match="rootFields"):
        parse_config({**base, "sandbox": {"rootFields": 0}}, {})
