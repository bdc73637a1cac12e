"""A sandbox server's admission policy: its throttle, its storage cap and its connection share,
in one place for both of the app's dispatch paths (the event loop and the worker threads).

- Every data and `/private` request first waits for a throttle slot (`admit`); management,
  `/import` and `/export` are never throttled.
- Writes (mutations that are not deletes only, and imports) must pass the storage cap. Before
  they run, a service known to be at its cap is refused: the worker threads measure when the
  cached measure cannot be trusted (`check_write`); the event loop never measures first, it only
  runs a write whose fresh measure is under the cap (`loop_may_write`) and hands the rest to a
  thread. Inside the write's transaction, before COMMIT, the request's `StorageGuard` (`guard`)
  holds what it actually wrote to the cap (see `runtime.quota`).
- A service may hold only a share of each pool's connections at once (`connections`): a few
  expensive requests of one service (each held to the statement timeout) leave the rest of the
  connections to the other services. The throttle alone does not bound this: it paces the
  requests' starts, not how many run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from psycopg import Connection
from redis.asyncio import Redis

from runtime.config import ServerConfig
from runtime.opencrud.executor import ServiceApi, mutation_fields
from runtime.quota import StorageGuard, StorageQuota, shrinks_only
from runtime.throttle import Throttle, ThrottleRate


class SandboxPolicy:
    def __init__(
        self, throttle: Throttle, quota: StorageQuota, slots: ServiceSlots | None = None
    ) -> None:
        self.throttle = throttle
        self.quota = quota
        self.slots = slots or ServiceSlots({})

    @classmethod
    async def open(
        cls, redis: Redis, server: ServerConfig, shares: dict[str, int] | None = None
    ) -> SandboxPolicy:
        """`shares`: how many connections of each dispatch path's pool one service may hold."""
        assert server.sandbox is not None
        throttle = Throttle(
            redis,
            ThrottleRate.from_sandbox(server.sandbox),
            prefix=f"refract:throttle:{server.name}:",
        )
        await throttle.load()  # an unreachable Redis fails the start, not a request
        return cls(throttle, StorageQuota.from_sandbox(server.sandbox), ServiceSlots(shares or {}))

    async def admit(self, project_id: str, operations: int = 1) -> int:
        """Wait for the service's throttle slots, one per operation of the request (a JSON array
        counts each of its operations); the delay in ms (raises `Throttled`)."""
        return await self.throttle.acquire(project_id, operations=operations)

    def connections(
        self, project_id: str, path: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the service's connection slots on `path` ("loop" or "threads") while
        the request runs; requests past the service's share wait for one of its own to end."""
        return self.slots.hold((path, project_id), path)

    @staticmethod
    def writes(api: ServiceApi, payload: Any) -> list[str]:
        """The root fields of the request's mutations ([] for reads)."""
        return mutation_fields(api, payload)

    def guard(self, project_id: str, schema: str) -> StorageGuard:
        """The storage check a request's mutations run before their COMMIT (a read never runs
        it; a delete's writes add nothing, so it passes without a query)."""
        return StorageGuard(self.quota, project_id, schema)

    def loop_may_write(self, schema: str, roots: list[str]) -> bool:
        """Whether the event loop may run the request without measuring first."""
        if not roots or shrinks_only(roots):
            return True
        usage = self.quota.cached_usage(schema)
        return usage is not None and not usage.over

    def check_write(self, conn: Connection, project_id: str, schema: str, roots: list[str]) -> None:
        """Raise `StorageLimitReached` for a write to a service at its cap."""
        if roots and not shrinks_only(roots):
            self.quota.check_write(conn, project_id, schema)

    def wrote(self, schema: str, roots: list[str]) -> None:
        """Note a committed mutation: a delete may have made room, so the next write measures
        (a write's own growth was counted by its guard)."""
        if roots and shrinks_only(roots):
            self.quota.record_delete(schema)


class ServiceSlots:
    """Per-key counters of requests running, each key limited to its path's share; requests
    past it wait in order. Keys with nothing running or waiting are dropped."""

    def __init__(self, shares: dict[str, int]) -> None:
        self.shares = shares
        self.running: dict[Any, int] = {}
        self.waiting: dict[Any, deque[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Any, path: str) -> AsyncIterator[None]:
        share = self.shares.get(path)
        if share is None:
            yield
            return
        running = self.running.get(key, 0)
        if running < share and key not in self.waiting:
            self.running[key] = running + 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.setdefault(key, deque()).append(turn)
            try:
                await turn  # the slot is handed over by `_release`, still counted as running
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release(key)
                else:
                    self._forget_waiter(key, turn)
                raise
        try:
            yield
        finally:
            self._release(key)

    def _release(self, key: Any) -> None:
        waiters = self.waiting.get(key)
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # hand the slot over: `running` stays the same
                if not waiters:
                    del self.waiting[key]
                return
        self.waiting.pop(key, None)
        count = self.running[key] - 1
        if count:
            self.running[key] = count
        else:
            del self.running[key]

    def _forget_waiter(self, key: Any, turn: asyncio.Future[None]) -> None:
        waiters = self.waiting.get(key)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(turn)
            if not waiters:
                del self.waiting[key]
