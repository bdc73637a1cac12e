"""A sandbox server's admission policy: its throttle and its storage cap, in one place for both
of the app's dispatch paths (the event loop and the worker threads).

- Every data and `/private` request first waits for a throttle slot (`admit`); management,
  `/import` and `/export` are never throttled.
- Writes (mutations that are not deletes only, and imports) must pass the storage cap. The
  worker threads measure when the cached measure cannot be trusted (`check_write`); the event
  loop never measures, it only runs a write whose fresh measure is under the cap
  (`loop_may_write`) and hands the rest to a thread.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import Connection
from redis.asyncio import Redis

from runtime.config import ServerConfig
from runtime.opencrud.executor import ServiceApi, mutation_fields
from runtime.quota import StorageQuota, shrinks_only
from runtime.throttle import Throttle, ThrottleRate


class SandboxPolicy:
    def __init__(self, throttle: Throttle, quota: StorageQuota) -> None:
        self.throttle = throttle
        self.quota = quota

    @classmethod
    async def open(cls, redis: Redis, server: ServerConfig) -> SandboxPolicy:
        assert server.sandbox is not None
        throttle = Throttle(
            redis,
            ThrottleRate.from_sandbox(server.sandbox),
            prefix=f"refract:throttle:{server.name}:",
        )
        await throttle.load()  # an unreachable Redis fails the start, not a request
        return cls(throttle, StorageQuota.from_sandbox(server.sandbox))

    async def admit(self, project_id: str) -> int:
        """Wait for the service's throttle slot; the delay in ms (raises `Throttled`)."""
        return await self.throttle.acquire(project_id)

    @staticmethod
    def writes(api: ServiceApi, payload: Any) -> list[str]:
        """The root fields of the request's mutations ([] for reads)."""
        return mutation_fields(api, payload)

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

    def wrote(self, schema: str, roots: list[str], payload: Any) -> None:
        """Note a committed mutation, so the next check sees its growth (or a delete's room)."""
        if roots:
            self.quota.record_mutation(schema, roots, len(json.dumps(payload)))
