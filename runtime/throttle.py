"""Sandbox throttling per service: GCRA shaping in Redis (reference `security.md`, and section 3
of `prisma1-server.md`).

Prisma's demo servers kept one token bucket per project in the memory of one process. Refract
runs several runtime processes behind one address, so the bucket lives in Redis: one key per
service holding its *theoretical arrival time* (GCRA), and one sorted set of the requests
waiting for a slot. The whole decision (refill, admit or refuse, reserve a slot) is one Lua
script, so concurrent requests from any number of processes see a consistent bucket.

A request over the rate is not refused: it gets a slot in the future and waits for it with
`asyncio.sleep`, so the event loop keeps serving other services meanwhile. Only when
`max_waiting` requests are already waiting is the next one refused at once, with Prisma's code
1004. A waiting request is an entry of the sorted set scored by its slot time, so it stops
counting as waiting when its slot comes, whether or not its process is still alive: a runtime
that dies mid-wait leaks nothing.

A JSON array of operations is as many requests as it holds operations: it reserves that many
slots at once and starts when the last of them is due (Prisma counted a batch as one call, so
one request of 500 operations used one slot). A batch larger than the burst plus the queue could
never start, and is refused at once with its own message.

Time comes from Redis (`TIME`), never from the processes' clocks, so every process agrees on
when a slot is due. (Tests pass a clock and a sleep of their own, and move time by hand.) Redis
errors propagate: a sandbox without its Redis fails closed, answered like a database outage,
rather than letting every service run unthrottled.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.errors import PrismaError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from runtime.config import SandboxLimits

log = logging.getLogger("runtime")

DEFAULT_PREFIX = "refract:throttle:"
THROTTLED_CODE = 1004
THROTTLED_MESSAGE = "There are too many concurrent queries for this service."
HEADER = b"throttled-by"

# KEYS: the service's theoretical arrival time (ms), the service's waiting requests (zset).
# ARGV: interval between slots (ms), burst, max waiting, the request's member id, how many
# operations it holds, and the time in ms ('' for Redis's own clock).
# Returns {1, delay_ms, tat} for an admitted request, {0, delay_ms, waiting} for a refused one.
# The operations that find no token now wait, each an entry of the zset scored at the time the
# request starts (the slot of its last operation). Numbers travel as strings: Redis would
# truncate Lua numbers to integers. The keys outlive their last slot by a minute: an expired key
# and one whose time has passed mean the same (a full bucket), so the margin changes nothing but
# spares a slow client (or a test) a bucket that vanished under it.
_ACQUIRE = """
local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_waiting = tonumber(ARGV[3])
local count = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local new_tat = tat + count * interval
local delay = new_tat - burst * interval - now
local stored = string.format('%.3f', new_tat)
local ttl = string.format('%d', math.ceil(new_tat - now) + 60000)
if delay <= 0 then
  redis.call('SET', KEYS[1], stored, 'PX', ttl)
  return {1, '0', stored}
end
local free = math.floor((now - tat) / interval + burst)
if free < 0 then
  free = 0
end
local waits = count - math.min(count, free)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local waiting = redis.call('ZCARD', KEYS[2])
if waiting + waits > max_waiting then
  return {0, string.format('%.3f', delay), waiting}
end
for i = 1, waits do
  redis.call('ZADD', KEYS[2], now + delay, ARGV[4] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[1], stored, 'PX', ttl)
return {1, string.format('%.3f', delay), stored}
"""

# A waiting request that gives up (its client went away) leaves the queue at once, and gives its
# slots back when nobody has reserved a later one, so abandoned requests do not delay the next.
# KEYS as above; ARGV: member id, the tat this request stored, interval (ms), its operations.
_RELEASE = """
local removed = 0
for i = 1, tonumber(ARGV[4]) do
  removed = removed + redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. i)
end
if removed > 0 and redis.call('GET', KEYS[1]) == ARGV[2] then
  local tat = tonumber(ARGV[2]) - tonumber(ARGV[3]) * tonumber(ARGV[4])
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'KEEPTTL')
end
return removed
"""


@dataclass(frozen=True)
class ThrottleRate:
    """How fast one service may go: `rate` requests per `per_seconds`, `burst` at once after a
    quiet spell (the rate by default, as Prisma's `maximumBurst = RATE`), and at most
    `max_waiting` requests waiting for a slot."""

    rate: int = 10
    per_seconds: float = 10.0
    burst: int | None = None
    max_waiting: int = 25

    def __post_init__(self) -> None:
        if self.rate < 1 or self.per_seconds <= 0:
            raise ValueError("a throttle rate needs rate >= 1 and per_seconds > 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("a throttle burst must be at least 1")
        if self.max_waiting < 0:
            raise ValueError("max_waiting must not be negative")

    @classmethod
    def from_sandbox(cls, limits: SandboxLimits) -> ThrottleRate:
        """The rate a sandbox server's config (`sandbox: {rate, perSeconds, maxWaiting}`) sets."""
        return cls(rate=limits.rate, per_seconds=limits.per_seconds, max_waiting=limits.max_waiting)

    @property
    def interval_ms(self) -> float:
        """Time between two slots once the burst is spent (1000 ms for 10 per 10 s)."""
        return self.per_seconds * 1000 / self.rate

    @property
    def burst_size(self) -> int:
        return self.burst if self.burst is not None else self.rate


class Throttled(PrismaError):
    """The service already has `max_waiting` requests waiting: Prisma's
    `ThrottlerBufferFull`, answered with HTTP 200 before any GraphQL runs."""

    def __init__(self, service_id: str, message: str = THROTTLED_MESSAGE) -> None:
        super().__init__(THROTTLED_CODE, message)
        self.service_id = service_id

    def answer(self, request_id: str) -> dict[str, Any]:
        """The response body, in the envelope of errors raised before execution."""
        return {"errors": [{"message": self.message, "code": self.code, "requestId": request_id}]}


class BatchTooLarge(Throttled):
    """A batch with more operations than the burst and the queue together: it could never
    start, however long it waited. Refused at once, with the numbers to stay under."""

    def __init__(self, service_id: str, operations: int, rate: ThrottleRate) -> None:
        most = rate.burst_size + rate.max_waiting
        super().__init__(
            service_id,
            f"This request holds {operations} operations, and each counts as a request: a "
            f"service here runs {rate.rate} requests per {rate.per_seconds:g} seconds, at most "
            f"{most} at once ({rate.burst_size} straight away and {rate.max_waiting} waiting). "
            f"Send at most {most} operations per request.",
        )


def header(delay_ms: int) -> tuple[bytes, bytes]:
    """The `Throttled-By: <n>ms` header every response of a throttled service carries."""
    return HEADER, f"{delay_ms}ms".encode()


class Throttle:
    """The throttle of every service of one sandbox server, shared through one Redis.

    `clock` (seconds) and `sleep` stand in for Redis's clock and `asyncio.sleep`: tests pass a
    clock they move by hand, so what they assert does not depend on how busy the machine is.
    """

    def __init__(
        self,
        redis: Redis,
        rate: ThrottleRate | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.rate = rate or ThrottleRate()
        self.prefix = prefix
        self.clock = clock
        self.sleep = sleep
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    async def load(self) -> None:
        """Load the scripts into Redis: called at start-up, an unreachable Redis fails there
        rather than in the first request, and the first requests make one round trip each."""
        await self.redis.script_load(_ACQUIRE)
        await self.redis.script_load(_RELEASE)

    def keys(self, service_id: str) -> list[str]:
        """The service's two keys; the hash tag keeps them on one Redis Cluster slot."""
        return [f"{self.prefix}{{{service_id}}}:tat", f"{self.prefix}{{{service_id}}}:waiting"]

    async def acquire(
        self, service_id: str, rate: ThrottleRate | None = None, *, operations: int = 1
    ) -> int:
        """Wait for the service's next slots, one per operation of the request; returns how long
        this request was held, in ms.

        The value is measured here (from the call to the slot), as Prisma's `throttledBy`
        measures from enqueueing to starting; it is 0 when the request did not wait. Raises
        `Throttled` at once when the service's queue cannot take the request's waiting
        operations, and `BatchTooLarge` for a batch that could never start. Cancelling the
        caller while it waits (a client that disconnects) frees its places and its slots.
        """
        rate = rate or self.rate
        operations = max(1, operations)
        if operations > rate.burst_size + rate.max_waiting:
            raise BatchTooLarge(service_id, operations, rate)
        elapsed = self.clock or time.monotonic
        started = elapsed()
        now = f"{self.clock() * 1000:.3f}" if self.clock is not None else ""
        member = uuid.uuid4().hex
        keys = self.keys(service_id)
        admitted, delay, tat = await self._acquire(
            keys=keys,
            args=[rate.interval_ms, rate.burst_size, rate.max_waiting, member, operations, now],
        )
        if not admitted:
            raise Throttled(service_id)
        delay_ms = float(delay)
        if delay_ms <= 0:
            return 0
        try:
            await self.sleep(delay_ms / 1000)
        except asyncio.CancelledError:
            await self._leave(keys, member, _text(tat), rate, operations)
            raise
        return round((elapsed() - started) * 1000)

    async def _leave(
        self, keys: list[str], member: str, tat: str, rate: ThrottleRate, operations: int
    ) -> None:
        try:
            await self._release(keys=keys, args=[member, tat, rate.interval_ms, operations])
        except Exception:
            # The entries expire at their slot time anyway; a failed release only delays that.
            log.warning("could not release a throttle slot of %s", keys[0], exc_info=True)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
