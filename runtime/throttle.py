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

Time comes from Redis (`TIME`), never from the processes' clocks, so every process agrees on
when a slot is due. Redis errors propagate: a sandbox without its Redis fails closed, answered
like a database outage, rather than letting every service run unthrottled.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
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
# ARGV: interval between slots (ms), burst, max waiting, the request's member id.
# Returns {1, delay_ms, tat} for an admitted request, {0, delay_ms, waiting} for a refused one.
# Numbers travel as strings: Redis would truncate Lua numbers to integers.
_ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_waiting = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local new_tat = tat + interval
local delay = new_tat - burst * interval - now
local stored = string.format('%.3f', new_tat)
local ttl = string.format('%d', math.ceil(new_tat - now) + 1000)
if delay <= 0 then
  redis.call('SET', KEYS[1], stored, 'PX', ttl)
  return {1, '0', stored}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local waiting = redis.call('ZCARD', KEYS[2])
if waiting >= max_waiting then
  return {0, string.format('%.3f', delay), waiting}
end
redis.call('ZADD', KEYS[2], now + delay, ARGV[4])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SET', KEYS[1], stored, 'PX', ttl)
return {1, string.format('%.3f', delay), stored}
"""

# A waiting request that gives up (its client went away) leaves the queue at once, and gives its
# slot back when nobody has reserved a later one, so abandoned requests do not delay the next.
# KEYS as above; ARGV: member id, the tat this request stored, interval (ms).
_RELEASE = """
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 1 and redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('SET', KEYS[1], string.format('%.3f', tonumber(ARGV[2]) - tonumber(ARGV[3])),
    'KEEPTTL')
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

    def __init__(self, service_id: str) -> None:
        super().__init__(THROTTLED_CODE, THROTTLED_MESSAGE)
        self.service_id = service_id

    def answer(self, request_id: str) -> dict[str, Any]:
        """The response body, in the envelope of errors raised before execution."""
        return {"errors": [{"message": self.message, "code": self.code, "requestId": request_id}]}


def header(delay_ms: int) -> tuple[bytes, bytes]:
    """The `Throttled-By: <n>ms` header every response of a throttled service carries."""
    return HEADER, f"{delay_ms}ms".encode()


class Throttle:
    """The throttle of every service of one sandbox server, shared through one Redis."""

    def __init__(
        self,
        redis: Redis,
        rate: ThrottleRate | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.redis = redis
        self.rate = rate or ThrottleRate()
        self.prefix = prefix
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

    async def acquire(self, service_id: str, rate: ThrottleRate | None = None) -> int:
        """Wait for the service's next slot; returns how long this request was held, in ms.

        The value is measured here (from the call to the slot), as Prisma's `throttledBy`
        measures from enqueueing to starting; it is 0 when the request did not wait. Raises
        `Throttled` at once when the service's queue is full. Cancelling the caller while it
        waits (a client that disconnects) frees its place in the queue.
        """
        rate = rate or self.rate
        started = time.monotonic()
        member = uuid.uuid4().hex
        keys = self.keys(service_id)
        admitted, delay, tat = await self._acquire(
            keys=keys, args=[rate.interval_ms, rate.burst_size, rate.max_waiting, member]
        )
        if not admitted:
            raise Throttled(service_id)
        delay_ms = float(delay)
        if delay_ms <= 0:
            return 0
        try:
            await asyncio.sleep(delay_ms / 1000)
        except asyncio.CancelledError:
            await self._leave(keys, member, _text(tat), rate)
            raise
        return round((time.monotonic() - started) * 1000)

    async def _leave(self, keys: list[str], member: str, tat: str, rate: ThrottleRate) -> None:
        try:
            await self._release(keys=keys, args=[member, tat, rate.interval_ms])
        except Exception:
            # The entry expires at its slot time anyway; a failed release only delays that.
            log.warning("could not release a throttle slot of %s", keys[0], exc_info=True)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
