"""Usage, measured by the runtime: what each service's endpoints served, per minute, shared by
every runtime process through the runtime's own management database.

The request path only adds to in-memory integers (`counter.UsageCounter`); a task on the event
loop writes them once a second (up to every 5 s when many services are busy:
`FLUSH_SERVICES_PER_SECOND`) in one round trip (`store.flush`) on a connection of its own, its
JSON built on a worker thread, so counting costs the request a few dictionary operations and
never waits for I/O. What one process counts is what every process reads back: the management
API's `serviceUsage` and `usageSummary` (`report`) and `GET /metrics` (`metrics`) read the
shared tables.

Usage of every server the runtime serves (its own and those registered through the operator
API) is kept in the runtime's own database, keyed by server name and project id, so no tenant
sees another's rows and a registered server's database holds nothing of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from runtime.usage import store
from runtime.usage.counter import UsageCounter

if TYPE_CHECKING:
    from runtime.config import UsageConfig
    from runtime.tenants import Tenant

log = logging.getLogger("runtime")

FLUSH_SECONDS = 1.0
# A flush writes a few rows per service counted since the last one. A runtime serving
# requests to a thousand services a second would spend a tenth of a CPU on them in the
# database; the next flush waits long enough for at most this many services a second, up to
# `MAX_FLUSH_SECONDS` (the minute's rows then lag a few seconds behind, never more).
FLUSH_SERVICES_PER_SECOND = 200
MAX_FLUSH_SECONDS = 5.0
PRUNE_SECONDS = 600.0
# Counts waiting because the database did not answer are kept this many flushes at most, so
# an outage cannot grow a process's memory without bound.
MAX_FAILED_FLUSHES = 300

StorageSampler = Callable[[str, str], int | None]


def flush_delay(services: int) -> float:
    """Seconds until the next flush, after one that wrote `services` services' rows."""
    return min(MAX_FLUSH_SECONDS, max(FLUSH_SECONDS, services / FLUSH_SERVICES_PER_SECOND))


class UsageRecorder:
    """This process's counter and the task that flushes it; reads go through `tenant`, the
    runtime's own server (its threads' pool), whose management schema holds the tables."""

    def __init__(self, config: UsageConfig, storage: StorageSampler | None = None) -> None:
        self.config = config
        self.counter = UsageCounter(config.operations_per_minute)
        self.storage = storage
        self.tenant: Tenant | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed = 0
        self._next_prune = 0.0

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def schema(self) -> str:
        assert self.tenant is not None
        return self.tenant.management_schema

    async def start(self, tenant: Tenant) -> None:
        """Create the tables (an unreachable database fails the start, as the tenant's own
        start would) and start flushing."""
        self.tenant = tenant

        def create() -> None:
            with tenant.pool.connection() as conn:
                store.ensure_tables(conn, tenant.management_schema)

        await asyncio.to_thread(create)
        if self.enabled:
            # The flush's connection opens now, not at the first flush: the process's set of
            # connections is settled once it has started.
            await self._connection()
            self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        """Flush what is left (a process stopping gracefully loses nothing) and close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            with contextlib.suppress(Exception):
                await self.flush()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = FLUSH_SECONDS
        while True:
            await asyncio.sleep(delay)
            try:
                delay = flush_delay(await self.flush())
                if loop.time() >= self._next_prune:
                    self._next_prune = loop.time() + PRUNE_SECONDS
                    await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("usage: could not write the counts; retrying", exc_info=True)
                await self._close_connection()

    async def flush(self) -> int:
        """Write everything counted so far; on failure the counts go back to the counter. The
        number of services written."""
        snapshot = self.counter.take()
        if not snapshot:
            return 0
        samples: dict[tuple[str, str], int] = {}
        if self.storage is not None:
            for server, service, _ in snapshot.services:
                sample = self.storage(server, service)
                if sample is not None:
                    samples[(server, service)] = sample
        # Thousands of services make a snapshot of megabytes of JSON: built on a worker thread,
        # it holds the event loop for a switch interval at a time, not for the whole of it.
        parameters = await asyncio.to_thread(store.flush_parameters, snapshot, samples)
        if parameters is None:
            return 0
        try:
            conn = await self._connection()
            await store.flush(conn, self.schema, parameters)
        except Exception:
            self._failed += 1
            if self._failed <= MAX_FAILED_FLUSHES:
                self.counter.merge(snapshot)
            raise
        self._failed = 0
        return len(snapshot.services)

    def forget(self, server: str, project_id: str) -> None:
        """Drop a deleted service's usage (`store.forget_service`), from a worker thread."""
        assert self.tenant is not None
        with self.tenant.pool.connection() as conn, conn.transaction():
            store.forget_service(conn, self.schema, server, project_id)

    async def _prune(self) -> None:
        before = store.now() - timedelta(days=self.config.retention_days)
        await store.prune(await self._connection(), self.schema, before)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            assert self.tenant is not None
            conninfo = psycopg.conninfo.make_conninfo(
                self.tenant.config.database.conninfo(), application_name="refract-runtime-usage"
            )
            self._conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        return self._conn

    async def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


_STORAGE_REFUSED = re.compile(rb'"code": ?1003[,}]')


def outcome(status: int, answer: Any) -> tuple[bool, bool]:
    """(whether an answer is an error, whether it refused a write at the storage cap), read
    from the answer as sent without parsing it: a data API answer with errors ends with its
    `errors` list (`...]}`), a successful one with its data object (`...}}`)."""
    if isinstance(answer, bytes):
        # Only the answer's last bytes are looked at (no copy of a large body), except for a
        # batch, whose items' errors can be anywhere.
        if status >= 400:
            error = True
        elif answer[:1] == b"[":
            error = b'"errors":[' in answer or b'"errors": [' in answer
        else:
            error = answer[-16:].rstrip().endswith(b"]}")
        return error, error and _STORAGE_REFUSED.search(answer) is not None
    if isinstance(answer, dict):
        problems = answer.get("errors")
        codes = [e.get("code") for e in problems or () if isinstance(e, dict)]
        return status >= 400 or bool(problems), 1003 in codes
    if isinstance(answer, list):
        problems = [i for i in answer if isinstance(i, dict) and i.get("errors")]
        return status >= 400 or bool(problems), False
    return status >= 400, False


PROJECT_NOT_FOUND = 3016


def unknown_service(answer: Any) -> bool:
    """Whether an answer says the service does not exist: such requests are not counted, so
    requests to made-up names cannot grow the tables (or `/metrics`) without bound."""
    if not isinstance(answer, dict):
        return False
    problems = answer.get("errors")
    return bool(problems) and any(
        isinstance(e, dict) and e.get("code") == PROJECT_NOT_FOUND for e in problems
    )
